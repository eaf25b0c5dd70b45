// Reads the options from the <script> tag's data-* attributes (see docs/tracker.md).
import { doc, w } from "./util.js";

const script = doc.currentScript || doc.querySelector("script[data-site]");
const data = (script && script.dataset) || {};

const num = (value, fallback) => (isNaN(parseFloat(value)) ? fallback : +value);
const flag = (value, fallback) => (value == null ? fallback : value != "false" && value != "0");

const disabled = (data.disable || "").split(/[\s,]+/);

export const site = data.site;
// The default endpoint lives on the host that served t.js, which is what makes a first-party
// proxy work with no extra option: serve t.js from your domain and events follow it.
export const api =
  data.api || (script && script.src ? new URL(script.src).origin : location.origin) + "/api/v1/collect";
export const debug = flag(data.debug, false);
export const sampleRate = num(data.sampleRate, 1);
export const respectDnt = flag(data.respectDnt, true);
export const requireConsent = flag(data.requireConsent, false);
export const batchSize = num(data.batchSize, 10);
export const flushInterval = num(data.flushInterval, 5000);
export const heartbeatInterval = num(data.heartbeatInterval, 30000);
export const idleTimeout = num(data.idleTimeout, 60000);

/** Whether the automatic capture `name` is on: `data-auto="false"` turns all of them off,
 * `data-disable="scroll,forms"` the named ones. */
export const auto = (name) => flag(data.auto, true) && !disabled.includes(name);
