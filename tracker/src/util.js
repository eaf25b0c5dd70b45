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

/** A unique id: a UUID where crypto.randomUUID exists (secure contexts: https, localhost),
 * elsewhere the time plus ~50 random bits, unique enough for an eventId. */
export const uuid = () =>
  crypto.randomUUID ? crypto.randomUUID() : now().toString(36) + Math.random().toString(36).slice(2);

export const listen = (target, type, fn, capture) =>
  target.addEventListener(type, fn, { capture, passive: true });

export const visible = () => doc.visibilityState == "visible";
