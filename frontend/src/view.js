// What every report page reads from the URL: the site, the period and the filters.
import { setQuery } from "./router.js";

export const PRESETS = [
  ["today", "Today"],
  ["yesterday", "Yesterday"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
  ["month", "This month"],
  ["lastmonth", "Last month"],
  ["custom", "Custom range"],
];
const DEFAULT_PERIOD = "30d";
const DAY = 86_400_000;

/** Today's date (YYYY-MM-DD) in `timeZone`. */
export function today(timeZone) {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  } catch {
    return new Date().toISOString().slice(0, 10);
  }
}

function shift(isoDate, days) {
  return new Date(Date.parse(isoDate + "T00:00:00Z") + days * DAY).toISOString().slice(0, 10);
}

const ISO = /^\d{4}-\d{2}-\d{2}$/;

/** {period, startDate, endDate} for the query's `period` (and `from`/`to` when custom). */
export function periodOf(query, timeZone) {
  const period = query.get("period") || DEFAULT_PERIOD;
  const t = today(timeZone);
  switch (period) {
    case "today":
      return { period, startDate: t, endDate: t };
    case "yesterday":
      return { period, startDate: shift(t, -1), endDate: shift(t, -1) };
    case "7d":
      return { period, startDate: shift(t, -6), endDate: t };
    case "month":
      return { period, startDate: t.slice(0, 8) + "01", endDate: t };
    case "lastmonth": {
      const end = shift(t.slice(0, 8) + "01", -1);
      return { period, startDate: end.slice(0, 8) + "01", endDate: end };
    }
    case "custom": {
      let from = query.get("from");
      let to = query.get("to");
      if (!ISO.test(from || "")) from = shift(t, -29);
      if (!ISO.test(to || "")) to = t;
      if (from > to) [from, to] = [to, from];
      return { period, startDate: from, endDate: to };
    }
    default:
      return { period: "30d", startDate: shift(t, -29), endDate: t };
  }
}

// Filters live in the URL as repeated `f=dimension|op|value` (dimensions and ops have no `|`).
export function filtersOf(query) {
  return query
    .getAll("f")
    .map((text) => {
      const [dimension, op, ...rest] = text.split("|");
      return dimension && op ? [dimension, op, rest.join("|")] : null;
    })
    .filter(Boolean);
}

export function filtersParam(filters) {
  return filters.length ? JSON.stringify(filters) : null;
}

// The filter just added by a row or the filter form: its chip takes the focus, since what had
// it (the row, the form) goes away when the page re-renders. Read once by the filter bar.
let chipToFocus = null;

export function takeChipFocus() {
  const text = chipToFocus;
  chipToFocus = null;
  return text;
}

export function addFilter(query, dimension, value, op = "is") {
  const existing = query.getAll("f");
  const text = `${dimension}|${op}|${value}`;
  if (existing.includes(text)) return; // its chip is there already; the focus stays put
  chipToFocus = text;
  setQuery({ f: [...existing, text] });
}

export function removeFilter(query, index) {
  const existing = query.getAll("f");
  existing.splice(index, 1);
  setQuery({ f: existing });
}

/** The query parameters the report endpoints share. */
export function reportParams(site, query) {
  const { startDate, endDate } = periodOf(query, site?.timezone || "UTC");
  return { siteId: site?.id, startDate, endDate, filters: filtersParam(filtersOf(query)) };
}

// Which query keys travel with the user from page to page.
export const SHARED_KEYS = ["site", "period", "from", "to", "f"];

export function sharedQuery(query) {
  const out = new URLSearchParams();
  for (const key of SHARED_KEYS) for (const v of query.getAll(key)) out.append(key, v);
  return out;
}

export const DIMENSIONS = [
  ["page", "Page"],
  ["entry_page", "Entry page"],
  ["exit_page", "Exit page"],
  ["source", "Source"],
  ["channel", "Channel"],
  ["referrer", "Referrer"],
  ["utm_source", "UTM source"],
  ["utm_medium", "UTM medium"],
  ["utm_campaign", "UTM campaign"],
  ["utm_term", "UTM term"],
  ["utm_content", "UTM content"],
  ["country", "Country"],
  ["region", "Region"],
  ["city", "City"],
  ["device", "Device"],
  ["browser", "Browser"],
  ["os", "OS"],
  ["screen", "Screen size"],
  ["event_type", "Event type"],
];

export function dimensionLabel(name) {
  if (name.startsWith("prop:")) return "Property " + name.slice(5);
  return DIMENSIONS.find(([k]) => k === name)?.[1] || name;
}
