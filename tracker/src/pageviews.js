// Page views, including single-page-app navigation, and the end of each page view.
import { auto } from "./config.js";
import { page, setReferrer, track } from "./core.js";
import { doc, listen, now, visible, w } from "./util.js";

const starts = [];
const ends = [];
/** `fn()` runs when a page view starts; `fn(where)` when one ends, before its page_exit. */
export const onStart = (fn) => starts.push(fn);
export const onEnd = (fn) => ends.push(fn);

let current = null; // the page (as core.page() describes it) of the page view in progress
let path;
let shown = 0; // visible time of this page view before `since`
let since = 0; // when the page last became visible, 0 while hidden

export const timeOnPage = () => Math.round(shown + (since && now() - since));

function end() {
  if (!current) return;
  for (const fn of ends) fn(current);
  if (auto("exit")) track("page_exit", { timeOnPage: timeOnPage() }, 0, current);
  current = null;
}

export function pageview(props) {
  end();
  current = page();
  path = location.pathname;
  shown = 0;
  since = visible() ? now() : 0;
  for (const fn of starts) fn();
  track("page_view", props);
}

// History changes that keep the path (query updates, replaceState for scroll restoration)
// are not new pages.
function navigated() {
  if (location.pathname != path) {
    if (current) setReferrer(current.u);
    pageview();
  }
}

export function startPageviews() {
  if (auto("spa")) {
    const h = history;
    for (const m of ["pushState", "replaceState"]) {
      const orig = h[m];
      h[m] = function () {
        const r = orig.apply(this, arguments);
        navigated();
        return r;
      };
    }
    listen(w, "popstate", navigated);
  }
  if (auto("pageview")) pageview();
}

listen(doc, "visibilitychange", () => {
  if (visible()) since = now();
  else {
    shown = timeOnPage();
    since = 0;
  }
});
listen(w, "pagehide", end);
// Back/forward cache: the page comes back without loading again, which is a new page view.
listen(w, "pageshow", (e) => e.persisted && auto("pageview") && pageview());
