// Small helpers shared by every module. Storage access is wrapped because it throws in
// sandboxed iframes, with cookies blocked, and in some private modes.

export const w = window;
export const doc = document;
export const LS = "localStorage";
export const SS = "sessionStorage";

export const now = () => Date.now();

export function get(store, key) {
  try {
    return w[store].getItem(key);
  } catch (e) {
    return null;
  }
}

/** Stores `value` under `key`; a null or undefined value removes the key. */
export function set(store, key, value) {
  try {
    value == null ? w[store].removeItem(key) : w[store].setItem(key, value);
  } catch (e) {}
}

export function json(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return null;
  }
}

/** A unique id in the form of those the server assigns: 32 hex digits, the time in ms, 7, then
 * 76 random bits (getRandomValues works outside secure contexts too, unlike randomUUID). Event
 * ids that sort by time let the server's duplicate check skip stored row groups by their id
 * ranges (docs/architecture.md). */
export const uuid = () => {
  let h = now().toString(16).padStart(12, 0) + 7;
  for (const x of crypto.getRandomValues(new Uint8Array(10))) h += (x | 256).toString(16).slice(1);
  return h.slice(0, 32);
};

export const listen = (target, type, fn, capture) =>
  target.addEventListener(type, fn, { capture, passive: true });

export const visible = () => doc.visibilityState == "visible";
