// Web vitals of the loaded page from the browser's own PerformanceObserver entries, sent as one
// web_vitals event when the page is first hidden (when LCP, CLS and INP are final enough).
import { auto } from "./config.js";
import { page, track } from "./core.js";
import { doc, listen, visible, w } from "./util.js";

const v = {}; // milliseconds, except cls

function observe(type, fn, opts) {
  try {
    new PerformanceObserver((list) => list.getEntries().forEach(fn)).observe({ type, buffered: true, ...opts });
  } catch (e) {} // entry type not supported by this browser
}

export function startVitals() {
  if (!auto("vitals")) return;
  const landing = page();
  let sent, first = 0, prev = 0, win = 0;
  observe("paint", (e) => e.name == "first-contentful-paint" && (v.fcp = e.startTime));
  observe("largest-contentful-paint", (e) => (v.lcp = e.startTime));
  // CLS: the largest burst of shifts (gaps under 1 s, bursts under 5 s), as web.dev defines it.
  observe("layout-shift", (e) => {
    if (e.hadRecentInput) return;
    win = e.startTime - prev < 1e3 && e.startTime - first < 5e3 ? win + e.value : ((first = e.startTime), e.value);
    prev = e.startTime;
    v.cls = Math.max(v.cls || 0, win);
  });
  // INP: the slowest interaction (the exact 98th percentile only differs past 50 interactions).
  observe("event", (e) => e.interactionId && (v.inp = Math.max(v.inp || 0, e.duration)), {
    durationThreshold: 16,
  });
  const send = () => {
    if (sent) return;
    sent = 1;
    const n = performance.getEntriesByType("navigation")[0];
    if (n) v.ttfb = n.responseStart;
    track("web_vitals", v, 0, landing);
  };
  listen(doc, "visibilitychange", () => visible() || send());
  listen(w, "pagehide", send);
}
