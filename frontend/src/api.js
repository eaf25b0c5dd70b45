// The API client: bearer tokens, one refresh at a time when the access token expires, and a
// trip to the login page when the session is over.
import { current, navigate } from "./router.js";

const KEY = "cadlink.auth";
const EARLY_MS = 30_000; // refresh this long before the access token expires

export class ApiError extends Error {
  constructor(status, code, message, field, retryAfter = null) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter; // seconds, from a 429's or 503's Retry-After
  }
}

export function tokens() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

function store(data) {
  const value = {
    accessToken: data.accessToken,
    refreshToken: data.refreshToken,
    expiresAt: Date.now() + (data.expiresIn || 900) * 1000,
  };
  localStorage.setItem(KEY, JSON.stringify(value));
  return value;
}

export function signedIn() {
  return !!tokens()?.refreshToken;
}

/** The user's "Log out": the server ends the session of the refresh token (so a copy of it
 * no longer works), then the browser forgets the tokens. */
export async function signOut() {
  const refreshToken = tokens()?.refreshToken;
  if (refreshToken) {
    try {
      await fetch("/api/v1/auth/logout", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refreshToken }),
      });
    } catch {
      // Offline: the tokens are forgotten here all the same.
    }
  }
  logout();
}

export function logout(reason) {
  localStorage.removeItem(KEY);
  const { path, query } = current();
  const params = { reason };
  if (path !== "/login" && reason) params.next = path + (query.toString() ? "?" + query : "");
  navigate("/login", params);
}

async function readJson(res) {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

export function errorOf(res, body) {
  const e = body?.error || {};
  const wait = Number.parseInt(res.headers.get("Retry-After") || "", 10); // seconds (never an HTTP date here)
  return new ApiError(res.status, e.code, e.message || `${res.status} ${res.statusText}`, e.details?.field, Number.isNaN(wait) ? null : wait);
}

export async function login(email, password, otp) {
  const res = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(otp ? { email, password, otp } : { email, password }),
  });
  const body = await readJson(res);
  if (!res.ok) throw errorOf(res, body);
  store(body.data);
}

let refreshing = null;

function refresh() {
  refreshing ??= (async () => {
    const t = tokens();
    if (!t?.refreshToken) throw new ApiError(401, "unauthorized", "not signed in");
    const res = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refreshToken: t.refreshToken }),
    });
    const body = await readJson(res);
    if (!res.ok) {
      // Another tab refreshed with the same token a moment earlier (the server refuses a token
      // used seconds ago without ending the session): take the pair it stored.
      const now = tokens();
      if (res.status === 401 && now?.refreshToken && now.refreshToken !== t.refreshToken) {
        return now.accessToken;
      }
      throw errorOf(res, body);
    }
    return store(body.data).accessToken;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** A valid access token, refreshed first when it is about to expire. */
export async function accessToken() {
  const t = tokens();
  if (!t) throw new ApiError(401, "unauthorized", "not signed in");
  if (t.expiresAt - Date.now() > EARLY_MS) return t.accessToken;
  try {
    return await refresh();
  } catch (e) {
    if (e.status === 401) logout("expired");
    throw e;
  }
}

export function url(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") qs.set(k, String(v));
  }
  const s = qs.toString();
  return s ? `${path}?${s}` : path;
}

/** A fetch with the bearer token; on 401 refreshes once and retries, then signs out. A
 * refresh that failed otherwise (the network, a server error) keeps the session: the page
 * shows the error and the next request tries again. */
export async function authedFetch(target, init = {}) {
  const send = async (token) =>
    fetch(target, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` } });
  let res = await send(await accessToken());
  if (res.status === 401) {
    try {
      res = await send(await refresh());
    } catch (e) {
      if (e.status === 401) logout("expired");
      throw e;
    }
    if (res.status === 401) {
      logout("expired");
      throw new ApiError(401, "unauthorized", "your session has ended");
    }
  }
  return res;
}

/** GET/POST JSON; resolves to {data, meta}; throws ApiError. */
export async function api(path, params, init) {
  const res = await authedFetch(url(path, params), init);
  const body = await readJson(res);
  if (!res.ok || !body?.success) throw errorOf(res, body);
  return { data: body.data, meta: body.meta || {} };
}
