// The URL is the state: the path names the page, the query string holds site, period, filters
// and each page's options, so any view can be shared and reloaded.
import { useEffect, useState } from "preact/hooks";

const listeners = new Set();

function emit() {
  for (const fn of listeners) fn();
}

window.addEventListener("popstate", emit);

export function current() {
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

export function href(path, query) {
  const qs = query ? query.toString() : "";
  return qs ? `${path}?${qs}` : path;
}

/** Go to `path` with `query` (URLSearchParams or object); pushes history unless `replace`. */
export function navigate(path, query, { replace = false } = {}) {
  const params = query instanceof URLSearchParams ? query : toParams(query || {});
  const url = href(path, params);
  if (url === location.pathname + location.search) return;
  history[replace ? "replaceState" : "pushState"](null, "", url);
  emit();
}

/** Merge `updates` into the current query (null or "" deletes; arrays repeat the key). */
export function setQuery(updates, options) {
  const { path, query } = current();
  for (const [key, value] of Object.entries(updates)) {
    query.delete(key);
    if (Array.isArray(value)) for (const v of value) query.append(key, v);
    else if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  navigate(path, query, options);
}

function toParams(obj) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(obj)) {
    if (Array.isArray(value)) for (const v of value) params.append(key, v);
    else if (value !== null && value !== undefined && value !== "") params.set(key, String(value));
  }
  return params;
}

/** Re-renders on every URL change; returns {path, query}. */
export function useRoute() {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    listeners.add(update);
    return () => listeners.delete(update);
  }, []);
  return route;
}

/** Props for an <a> that navigates without reloading the page. */
export function link(path, query) {
  const url = href(path, query instanceof URLSearchParams ? query : toParams(query || {}));
  return {
    href: url,
    onClick: (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      history.pushState(null, "", url);
      emit();
    },
  };
}
