// Identity, consent and the event object itself.
//
// sessionId lives in sessionStorage (one tab, expires after 30 min without events); visitorId
// lives in localStorage and exists only while analytics consent is granted; no cookies at all.
import { auto, debug, requireConsent, respectDnt, sampleRate, site } from "./config.js";
import { clear, enqueue } from "./transport.js";
import { doc, get, json, LS, now, set, SS, uuid, w } from "./util.js";

const K_CONSENT = "cadlink:c";
const K_VISITOR = "cadlink:v";
const K_SESSION = "cadlink:s";
const K_USER = "cadlink:u";
const SESSION_TTL = 18e5; // 30 minutes

let consent = get(LS, K_CONSENT); // "1" granted, "0" refused, null not asked
let userId = get(SS, K_USER);
let session; // in-memory copy, for when sessionStorage is unavailable
export let referrer = doc.referrer;
export const setReferrer = (r) => (referrer = r);

const nav = navigator;
const dnt = respectDnt && (nav.doNotTrack == "1" || w.doNotTrack == "1" || nav.globalPrivacyControl);

const allowed = () => site && !dnt && (consent == "1" || (consent != "0" && !requireConsent));

/** The current page as events describe it; page views remember theirs for the exit events. */
export const page = () => ({ u: location.href, t: doc.title, r: referrer });

/**
 * Records one event. `props` become `properties`; `at` overrides the timestamp (ms);
 * `where` is the page it belongs to (defaults to the current one).
 */
export function track(type, props, at, where) {
  if (!allowed()) return;
  const t = now();
  let s = json(get(SS, K_SESSION)) || session;
  const fresh = !s || t - s.t > SESSION_TTL;
  // Sampling is decided once per session so a sampled session is complete, not thinned.
  if (fresh) s = { i: uuid(), s: Math.random() < sampleRate };
  s.t = t;
  set(SS, K_SESSION, JSON.stringify((session = s)));
  if (!s.s) return;
  if (fresh && type != "session_start" && auto("session")) track("session_start");

  where = where || page();
  const url = new URL(where.u);
  const q = url.searchParams;
  const event = {
    eventId: uuid(),
    // The server accepts [A-Za-z0-9_.:-]{1,64}; an invalid name would reject the whole batch.
    eventType: String(type).replace(/[^\w.:-]/g, "_").slice(0, 64),
    timestamp: Math.round(at || t),
    sessionId: s.i,
    consent: consent == "1",
    pageUrl: where.u.slice(0, 2048),
    pagePath: url.pathname.slice(0, 2048),
    pageTitle: where.t.slice(0, 512),
    referrer: where.r.slice(0, 2048) || undefined,
    screenResolution: screen.width + "x" + screen.height,
    viewport: w.innerWidth + "x" + w.innerHeight,
    properties: props || {},
  };
  if (consent == "1") {
    let v = get(LS, K_VISITOR);
    if (!v) set(LS, K_VISITOR, (v = uuid()));
    event.visitorId = v;
  }
  if (userId) event.userId = userId;
  for (const k of ["Source", "Medium", "Campaign", "Term", "Content"]) {
    const v = q.get("utm_" + k.toLowerCase());
    if (v) event["utm" + k] = v.slice(0, 128);
  }
  if (debug) console.log("[cadlink]", event.eventType, event);
  enqueue(event);
}

export function identify(id, traits) {
  userId = id == null ? "" : String(id).slice(0, 128);
  set(SS, K_USER, userId || null);
  if (userId) track("identify", traits);
}

/** `{analytics: true}` keeps a visitorId; `{analytics: false}` stops sending and forgets ids. */
export function setConsent(choice) {
  const a = choice && choice.analytics;
  if (a == null) return; // only `marketing`: nothing the tracker itself does with it
  consent = a ? "1" : "0";
  set(LS, K_CONSENT, consent);
  if (!a) {
    for (const k of [K_SESSION, K_USER]) set(SS, k);
    set(LS, K_VISITOR);
    userId = "";
    session = null;
    clear();
  }
}
