// Delivery: batches events, sends them with fetch(keepalive) while the page lives and with
// sendBeacon when it is hidden or unloading, and never forgets a batch it has not seen accepted.
//
// Every batch is written to localStorage before it is sent and removed once the server accepted
// it (or sendBeacon took it while the network looked fine), so a batch in flight when the tab
// closes, or one that failed, is sent again by the next page of the site. The server counts a repeated eventId once, which is
// what makes sending twice harmless and losing events the only thing to avoid.
import { api, batchSize, flushInterval, site } from "./config.js";
import { get, json, listen, LS, now, set, w } from "./util.js";

const KEY = "cadlink:q:" + site;
const MAX_BATCH = 50; // the server takes at most 100 events a request
const MAX_KEPT = 500; // bound on unsent events, in memory and in storage

let queue = json(get(LS, KEY)) || []; // events kept by an earlier page: send them again
let busy = 0;
let fails = 0;
let timer = 0;

function store(add, done) {
  let kept = (json(get(LS, KEY)) || []).concat(add || []);
  if (done) kept = kept.filter((e) => !done.includes(e.eventId));
  set(LS, KEY, kept.length ? JSON.stringify(kept.slice(-MAX_KEPT)) : null);
}

function schedule(delay) {
  if (!timer && queue.length) timer = setTimeout(flush, delay);
}

export function enqueue(event) {
  queue.push(event);
  if (queue.length > MAX_KEPT) queue.shift();
  queue.length >= batchSize && !fails ? flush() : schedule(flushInterval);
}

/** Forgets everything not yet sent (analytics consent was withdrawn). */
export function clear() {
  queue = [];
  set(LS, KEY);
}

/** Sends queued events now; `beacon` when the page is going away. */
export function flush(beacon) {
  clearTimeout(timer);
  timer = 0;
  if (!queue.length || (busy && !beacon)) return;
  const batch = queue.splice(0, MAX_BATCH);
  const ids = batch.map((e) => e.eventId);
  const body = JSON.stringify({ siteId: site, events: batch });
  store(batch);
  const done = () => store(0, ids);
  if (beacon && navigator.sendBeacon && navigator.sendBeacon(api, body)) {
    // sendBeacon only says the browser took the batch. While requests are failing, keep it
    // stored too: the next page sends it again, and the server counts its eventIds once.
    fails || done();
    return flush(beacon);
  }
  busy = 1;
  // A string body goes as text/plain, a "simple" request: no CORS preflight, and no cookies to
  // another origin. keepalive lets the request outlive the page but is capped at 64 KB in flight.
  return fetch(api, { method: "POST", body, keepalive: body.length < 6e4 })
    .then((r) => {
      // 5xx and 429 are worth retrying; anything else is final (4xx would fail again).
      if (r.status > 499 || r.status == 429) throw r;
      fails = 0;
      done();
    })
    .catch(() => {
      queue = batch.concat(queue).slice(-MAX_KEPT);
      fails++;
    })
    .finally(() => {
      busy = 0;
      // Back off 1 s, 2 s, 4 s … up to a minute (with jitter) after failures.
      schedule(fails ? Math.min(6e4, 500 * 2 ** fails) * (1 + Math.random() / 2) : 0);
    });
}

listen(w, "online", () => {
  fails = 0;
  flush();
});
