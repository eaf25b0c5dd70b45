// What the signed-in account may do. The role comes from the access token's payload (a JWT:
// the server signs it, the browser only reads it); the server still decides every request, so
// a 403 is handled too, for a role changed since the token was issued.
import { tokens } from "./api.js";

/** "ADMIN", "ANALYST", "VIEWER", or null (signed out, or a token we cannot read). */
export function role() {
  const token = tokens()?.accessToken;
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).role || null;
  } catch {
    return null;
  }
}

/** Reports, CRM, realtime and exports are for ADMIN and ANALYST (the API's contract); an
 * unreadable role gets the pages and the server's answer. */
export function readsReports(r = role()) {
  return r !== "VIEWER";
}

export function isAdmin(r = role()) {
  return r === "ADMIN";
}

/** What to tell someone whose account may not see a page (no retry: it will not succeed). */
export function forbiddenText(r = role()) {
  if (r === "VIEWER") return "Your account is a viewer: reports are for analysts and admins. Ask an admin for the analyst role.";
  return `Your account${r ? ` (${r.toLowerCase()})` : ""} may not see this. Ask an admin for a role that can.`;
}
