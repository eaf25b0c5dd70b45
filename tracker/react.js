// React binding for the CADLINK tracker: <AnalyticsProvider> loads t.js once and useAnalytics()
// returns the tracker's API. Plain ES module with no JSX, so any bundler (or an import map) can
// use it as it is. See docs/tracker.md, "React".
import { createContext, createElement, useContext, useEffect, useRef } from "react";

const METHODS = ["track", "pageview", "identify", "consent", "trackProductView", "trackAffiliateClick", "flush"];

// The pre-load stub from docs/tracker.md: calls made before t.js has run are queued on it and
// replayed by the tracker, so components may track from their first effect.
function tracker() {
  const w = window;
  return (w.cadlink =
    w.cadlink ||
    function () {
      (w.cadlink.q = w.cadlink.q || []).push(arguments);
    });
}

/** The tracker's API; every call is safe during server rendering (it does nothing there). */
export const analytics = Object.freeze(
  Object.fromEntries(
    METHODS.map((m) => [m, (...args) => (typeof window == "undefined" ? undefined : tracker()(m, ...args))]),
  ),
);

const Context = createContext(analytics);

const kebab = (name) => name.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());

/**
 * Loads t.js from `src` (once per page) for `siteId` and provides the tracker to useAnalytics().
 *
 * `options` become data-* attributes of the script tag (`{sampleRate: 0.5}` → data-sample-rate).
 * `consent` (`{analytics, marketing}`) and `userId` (with `traits`) are passed on whenever they
 * change. Without `src`, a t.js already on the page (a <script> tag of its own) is used.
 */
export function AnalyticsProvider({ src, siteId, options, consent, userId, traits, children }) {
  useEffect(() => {
    if (!src || document.querySelector("script[data-cadlink-react]") || (window.cadlink && window.cadlink.api)) return;
    const script = document.createElement("script");
    script.defer = true;
    script.src = src;
    script.setAttribute("data-cadlink-react", "");
    if (siteId) script.setAttribute("data-site", siteId);
    for (const [k, v] of Object.entries(options || {})) script.setAttribute("data-" + kebab(k), String(v));
    tracker(); // the stub must exist before the script runs, so queued calls are replayed
    document.head.appendChild(script);
  }, [src, siteId]);

  // Consent and identity are passed on during render, not in an effect: React runs the
  // children's effects first, and their events must already carry the right consent and user.
  // Both calls are idempotent, so a repeated render (StrictMode) does no harm.
  const seen = useRef({});
  const c = consent ? [consent.analytics, consent.marketing] : [];
  if (consent && (seen.current.a !== c[0] || seen.current.m !== c[1])) {
    seen.current.a = c[0];
    seen.current.m = c[1];
    analytics.consent({ analytics: c[0], marketing: c[1] });
  }
  if (userId && seen.current.u !== userId) {
    seen.current.u = userId;
    analytics.identify(userId, traits);
  }

  return createElement(Context.Provider, { value: analytics }, children);
}

/** `{track, pageview, identify, consent, trackProductView, trackAffiliateClick, flush}`. */
export function useAnalytics() {
  return useContext(Context);
}
