// Uncaught errors and unhandled promise rejections, each distinct one once, at most 10 a page.
import { auto } from "./config.js";
import { track } from "./core.js";
import { listen, w } from "./util.js";

const seen = new Set();

function report(error, message, extra) {
  message = String(message).slice(0, 500);
  const key = message + (extra.source || "") + (extra.line || "");
  if (seen.has(key) || seen.size > 9) return;
  seen.add(key);
  extra.message = message;
  if (error && error.stack) extra.stack = String(error.stack).slice(0, 1000);
  track("js_error", extra);
}

export function startErrors() {
  if (!auto("errors")) return;
  // Without capture, window only hears script errors: failed images and scripts do not bubble.
  listen(w, "error", (e) =>
    report(e.error, e.message, { source: e.filename, line: e.lineno }),
  );
  listen(w, "unhandledrejection", (e) => {
    const r = e.reason;
    report(r, (r && r.message) || r, { kind: "unhandledrejection" });
  });
}
