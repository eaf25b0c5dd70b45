// Numbers for people: 1.2k, 3m 20s, 45.3%. Exact values go in title attributes.

const exactFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

function trim(text) {
  return text.replace(/\.0$/, "");
}

/** 950 → "950", 1234 → "1.2k", 12345 → "12.3k", 123456 → "123k", 1.5e6 → "1.5M". */
export function num(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const a = Math.abs(n);
  if (a < 1000) return Number.isInteger(n) ? String(n) : n.toFixed(a < 10 ? 2 : 1).replace(/\.?0+$/, "");
  for (const [size, unit] of [[1e9, "B"], [1e6, "M"], [1e3, "k"]]) {
    if (a >= size) {
      const v = n / size;
      return trim(Math.abs(v) < 100 ? v.toFixed(1) : v.toFixed(0)) + unit;
    }
  }
  return String(n);
}

export function exact(n) {
  return n === null || n === undefined ? "" : exactFmt.format(n);
}

/** 0.4531 → "45.3%". */
export function pct(ratio, digits = 1) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return "–";
  return trim((ratio * 100).toFixed(digits)) + "%";
}

/** Seconds → "45s", "3m 20s", "1h 5m"; under a second "380ms". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 1) return s === 0 ? "0s" : Math.round(s * 1000) + "ms";
  if (s < 60) return (s < 10 ? trim(s.toFixed(1)) : Math.round(s)) + "s";
  const total = Math.round(s);
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const rest = total % 60;
  if (d) return h ? `${d}d ${h}h` : `${d}d`; // "7d", not "168h"
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  return rest ? `${m}m ${rest}s` : `${m}m`;
}

/** Milliseconds of a web vital → "437ms" or "1.87s". */
export function millis(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms < 1000 ? Math.round(ms) + "ms" : trim((ms / 1000).toFixed(2)) + "s";
}

export function money(n) {
  if (n === null || n === undefined) return "–";
  return Math.abs(n) >= 10000 ? num(n) : exactFmt.format(Math.round(n * 100) / 100);
}

/** Revenue per currency (`[{currency, revenue}]`) as "1,234.50 EUR · 99 USD", the largest
 * first: amounts in different currencies are never added up. "–" without revenue. */
export function byCurrency(list) {
  if (!list || list.length === 0) return "–";
  return [...list]
    .sort((a, b) => b.revenue - a.revenue)
    .map((c) => `${money(c.revenue)} ${c.currency || "(no currency)"}`)
    .join(" · ");
}

/** Change from `previous` to `current` as a ratio; null when there was nothing before (a
 * previous rate of null had nothing to measure); undefined when `current` is null: no change
 * to tell. */
export function change(current, previous) {
  if (current === null || current === undefined) return undefined;
  if (previous === null || previous === undefined) return null;
  if (!previous) return current ? null : 0;
  return (current - previous) / previous;
}

/** A change as "+12.5%", "−3%", "±0%"; "new" for null (nothing before), "–" for undefined. */
export function signedPct(ratio) {
  if (ratio === null) return "new";
  if (ratio === undefined || Number.isNaN(ratio)) return "–";
  const sign = ratio > 0 ? "+" : ratio < 0 ? "−" : "±";
  return sign + pct(Math.abs(ratio));
}

const dateTimeFmts = new Map();

function dateTimeFmt(timeZone) {
  const key = timeZone || "";
  if (!dateTimeFmts.has(key)) {
    const options = { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
    let fmt;
    try {
      fmt = new Intl.DateTimeFormat("en-GB", timeZone ? { ...options, timeZone } : options);
    } catch {
      fmt = new Intl.DateTimeFormat("en-GB", { ...options, timeZone: "UTC" }); // an unknown zone
    }
    dateTimeFmts.set(key, fmt);
  }
  return dateTimeFmts.get(key);
}

/** A moment (ms) as "7 Dec, 14:05" in `timeZone` (the site's: reports count days in it), or
 * the browser's zone without one. Say the zone wherever times are listed. */
export function dateTime(ms, timeZone) {
  return ms ? dateTimeFmt(timeZone).format(new Date(ms)) : "–";
}

/** A past moment relative to `now` (ms): "12s ago", "4m ago", "3h ago", "2d ago". */
export function ago(ms, now = Date.now()) {
  if (!ms) return "–";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function label(value) {
  return value === null || value === undefined || value === "" ? "(none)" : String(value);
}
