// Clicks on [data-track] elements and on links to other hosts.
import { auto } from "./config.js";
import { track } from "./core.js";
import { listen, w } from "./util.js";

function click(e) {
  const target = e.target;
  if (!target.closest) return;
  const el = auto("clicks") && target.closest("[data-track]");
  if (el) {
    // data-track-product-id="42" → dataset.trackProductId → properties.productId
    const props = {};
    for (const k in el.dataset)
      if (k.length > 5 && k.startsWith("track")) props[k[5].toLowerCase() + k.slice(6)] = el.dataset[k];
    track(el.dataset.track, props);
  }
  const a = auto("outbound") && target.closest("a[href]");
  if (a && a.host != location.host && /^https?:$/.test(a.protocol))
    track("outbound_click", { url: a.href });
}

export function startClicks() {
  listen(w, "click", click, 1);
  listen(w, "auxclick", click, 1); // middle-click opens a link too
}
