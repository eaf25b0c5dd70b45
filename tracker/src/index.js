// CADLINK Analytics browser tracker. Installation and options: docs/tracker.md.
import { identify, setConsent, track } from "./core.js";
import { startClicks } from "./clicks.js";
import { startEngagement } from "./engagement.js";
import { startErrors } from "./errors.js";
import { startForms } from "./forms.js";
import { pageview, startPageviews } from "./pageviews.js";
import { startScroll } from "./scroll.js";
import { flush } from "./transport.js";
import { doc, listen, visible, w } from "./util.js";
import { startVitals } from "./vitals.js";

// trackProductView({id, name, price, …}, "search") and trackAffiliateClick accept a product
// object or a bare id.
function product(p, extra) {
  const { id, name, ...rest } = p && typeof p == "object" ? p : { id: p };
  return { productId: id, productName: name, ...rest, ...extra };
}

const api = {
  track: (type, props) => track(type, props),
  pageview,
  identify,
  consent: setConsent,
  trackProductView: (p, source) => track("product_view", product(p, { source })),
  trackAffiliateClick: (p, url, position, ctaText) =>
    track("affiliate_click", product(p, { url, position, ctaText })),
  flush: () => flush(),
};

const stub = w.cadlink;
if (!(stub && stub.api)) {
  // cadlink("track", "signup", {...}) works as well as cadlink.track("signup", {...}): the first
  // form is what the pre-load stub records.
  const cadlink = (method, ...args) => api[method] && api[method](...args);
  w.cadlink = Object.assign(cadlink, api, { api });
  w.vibeTrack = api.track;
  w.vibeIdentify = api.identify;

  // Calls made before the script loaded run first, so a queued consent() or identify() applies
  // to the first page view.
  for (const args of (stub && stub.q) || []) cadlink(...args);
  // Page views last: the others hook into the start of a page view, the first one included.
  for (const start of [startEngagement, startScroll, startClicks, startForms, startErrors, startVitals, startPageviews])
    start();

  // Registered last: the hide and unload handlers above have queued their events by now.
  listen(doc, "visibilitychange", () => visible() || flush(1));
  listen(w, "pagehide", () => flush(1));
}
