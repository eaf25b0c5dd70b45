import { useState } from "preact/hooks";
import { login } from "../api.js";
import { navigate } from "../router.js";

const REASONS = {
  expired: "Your session has ended. Please log in again.",
};

/** The server's wait (Retry-After, seconds) in words: seconds up to 90, then minutes. */
function waitText(seconds) {
  if (seconds <= 90) return `${seconds} ${seconds === 1 ? "second" : "seconds"}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minutes`;
}

function lockedOut(err) {
  if (err.retryAfter >= 1) return `Too many attempts. Try again in ${waitText(err.retryAfter)}.`;
  // No Retry-After (a proxy dropped it?): the server's message says the wait too.
  return err.message ? `Too many attempts: ${err.message}.` : "Too many attempts. Wait a little and try again.";
}

export function Login({ query }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [otp, setOtp] = useState("");
  const [wantOtp, setWantOtp] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const reason = REASONS[query.get("reason")];
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(email.trim(), password, wantOtp ? otp.trim() : undefined);
      const next = query.get("next");
      // Only same-origin paths: `next` comes from the URL.
      const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
      const [path, qs] = target.split("?");
      navigate(path, new URLSearchParams(qs || ""), { replace: true });
    } catch (err) {
      if (err.code === "otp_required") setWantOtp(true);
      setError(
        err.status === 401
          ? "That email and password do not match an account."
          : err.status === 429
            ? lockedOut(err)
            : err.message || "Could not log in.",
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form class="login-box" onSubmit={submit} aria-labelledby="login-title">
        <div class="brand big">
          <span class="logo" aria-hidden="true">◆</span> CADLINK
        </div>
        <h1 id="login-title">Log in</h1>
        {reason && !error && <p class="notice">{reason}</p>}
        {error && (
          <p class="state error" role="alert">
            {error}
          </p>
        )}
        <label>
          Email
          <input type="email" name="email" autoComplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} autoFocus />
        </label>
        <label>
          Password
          <input type="password" name="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {wantOtp ? (
          <label>
            One-time code
            <input name="otp" inputMode="numeric" autoComplete="one-time-code" pattern="[0-9 ]{6,8}" value={otp} onInput={(e) => setOtp(e.currentTarget.value)} />
          </label>
        ) : (
          <button type="button" class="link" onClick={() => setWantOtp(true)}>
            I have a one-time code
          </button>
        )}
        <button type="submit" class="button primary" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
      </form>
    </main>
  );
}
