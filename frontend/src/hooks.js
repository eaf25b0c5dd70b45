import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";

/**
 * Loads `path` with `params` whenever either changes (a null path loads nothing).
 * Returns {loading, data, meta, error, reload}; a newer request supersedes an older one.
 */
export function useApi(path, params) {
  const key = path ? path + "?" + JSON.stringify(params || {}) : null;
  const [state, setState] = useState({ loading: !!key, data: null, meta: null, error: null });
  const [nonce, setNonce] = useState(0);
  const latest = useRef(0);
  useEffect(() => {
    if (!key) {
      setState({ loading: false, data: null, meta: null, error: null });
      return;
    }
    const ticket = ++latest.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    api(path, params).then(
      ({ data, meta }) => {
        if (ticket === latest.current) setState({ loading: false, data, meta, error: null });
      },
      (error) => {
        if (ticket === latest.current) setState({ loading: false, data: null, meta: null, error });
      },
    );
  }, [key, nonce]);
  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return { ...state, reload };
}

/** Dark mode follows the system; returns true while it is dark. */
export function useDark() {
  const query = matchMedia("(prefers-color-scheme: dark)");
  const [dark, setDark] = useState(query.matches);
  useEffect(() => {
    const update = () => setDark(query.matches);
    query.addEventListener("change", update);
    return () => query.removeEventListener("change", update);
  }, []);
  return dark;
}

/** A clock that ticks every `ms` (for "12s ago"). */
export function useNow(ms = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return now;
}
