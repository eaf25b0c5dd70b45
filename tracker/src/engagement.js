// Heartbeat while the visitor is here, idle_start/idle_end when they stop and come back.
import { auto, heartbeatInterval, idleTimeout } from "./config.js";
import { track } from "./core.js";
import { timeOnPage } from "./pageviews.js";
import { doc, listen, now, visible, w } from "./util.js";

let last = now();
let idleSince = 0;

function active() {
  if (idleSince) {
    track("idle_end", { idleTime: now() - idleSince });
    idleSince = 0;
  }
  last = now();
}

export function startEngagement() {
  if (!auto("heartbeat")) return;
  // Pointer events cover mouse, pen and touch; coming back to the tab is activity too.
  for (const type of ["pointerdown", "pointermove", "keydown", "scroll"]) listen(w, type, active, 1);
  listen(doc, "visibilitychange", () => visible() && active());
  // One timer does both jobs: idleness is noticed at the next tick but dated when it began.
  setInterval(() => {
    if (!visible() || idleSince) return;
    if (now() - last > idleTimeout) {
      idleSince = last + idleTimeout;
      track("idle_start", {}, idleSince);
    } else track("heartbeat", { timeOnPage: timeOnPage() });
  }, heartbeatInterval);
}
