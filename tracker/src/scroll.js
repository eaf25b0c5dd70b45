// Scroll depth milestones, each sent once per page view.
import { auto } from "./config.js";
import { track } from "./core.js";
import { onStart } from "./pageviews.js";
import { doc, listen, w } from "./util.js";

let reached;

export function startScroll() {
  if (!auto("scroll")) return;
  onStart(() => (reached = {}));
  listen(w, "scroll", () => {
    const depth = Math.round(((w.scrollY + w.innerHeight) / doc.documentElement.scrollHeight) * 100);
    for (const m of [25, 50, 75, 90, 100])
      if (depth >= m && reached && !reached[m]) {
        reached[m] = 1;
        track("scroll_depth", { depth: m });
      }
  });
}
