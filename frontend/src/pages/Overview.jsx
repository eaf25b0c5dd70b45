import { Chart, localNow, partialIndex, toSeconds } from "../components/Chart.jsx";
import { Async, BarList, Card, Panel, Tabs } from "../components/ui.jsx";
import { change, duration, num, pct, signedPct } from "../format.js";
import { useApi } from "../hooks.js";
import { setQuery } from "../router.js";
import { addFilter, reportParams } from "../view.js";

// [key, label, format, lower is better]
export const METRICS = [
  ["visitors", "Visitors", num, false],
  ["pageViews", "Page views", num, false],
  ["sessions", "Sessions", num, false],
  ["viewsPerSession", "Views per session", (v) => (v === null || v === undefined ? "–" : v ? v.toFixed(2) : "0"), false],
  ["bounceRate", "Bounce rate", pct, true],
  ["avgSessionDuration", "Session duration", duration, false],
];

// Each panel: URL key for its tab, title, tabs [dimension, label].
const PANELS = [
  ["pages", "Pages", [["page", "Top pages"], ["entry_page", "Entry pages"], ["exit_page", "Exit pages"]]],
  ["sources", "Sources", [["source", "Sources"], ["channel", "Channels"], ["referrer", "Referrers"], ["utm_source", "UTM sources"], ["utm_medium", "UTM mediums"], ["utm_campaign", "Campaigns"]]],
  ["locations", "Locations", [["country", "Countries"], ["region", "Regions"], ["city", "Cities"]]],
  ["tech", "Devices", [["device", "Devices"], ["browser", "Browsers"], ["os", "Operating systems"], ["screen", "Screen sizes"]]],
];

const COUNTRY = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames(["en"], { type: "region" }) : null;

function countryName(code) {
  try {
    return code && COUNTRY ? `${COUNTRY.of(code)} (${code})` : code;
  } catch {
    return code;
  }
}

export function deltaOf(value, previous, lowerIsBetter) {
  const ratio = change(value, previous);
  // A rate with nothing to measure now (null): no change to tell.
  if (ratio === undefined) return { text: "–", good: null };
  if (ratio === 0) return { text: "±0%", good: null };
  // Nothing to compare with (no data in the previous period): neither better nor worse.
  if (ratio === null) return { text: "new", good: null };
  const better = lowerIsBetter ? ratio < 0 : ratio > 0;
  return { text: signedPct(ratio), good: better };
}

export function Overview({ site, query }) {
  const params = { ...reportParams(site, query), limit: 10 };
  const q = useApi("/api/v1/analytics/dashboard", params);
  return (
    <div class="stack">
      <Async q={q}>
        {(data) => (
          <>
            <div class="cards" data-testid="metric-cards">
              {METRICS.map(([key, labelText, fmt, lower]) => (
                <Card
                  name={key}
                  label={labelText}
                  value={fmt(data.summary[key])}
                  raw={data.summary[key]}
                  delta={deltaOf(data.summary[key], data.summary.previous[key], lower)}
                  hint={`Previous period: ${fmt(data.summary.previous[key])}`}
                />
              ))}
            </div>
            <Panel title="Visitors and page views">
              {data.timeseries.every((p) => !p.pageViews && !p.visitors) ? (
                <div class="state empty">No visits in this period yet.</div>
              ) : (
                <Chart
                  label="Visitors and page views over time"
                  hourly={q.meta?.granularity === "hour"}
                  x={data.timeseries.map((p) => toSeconds(p.date))}
                  partial={partialIndex(
                    data.timeseries.map((p) => toSeconds(p.date)),
                    localNow(q.meta?.timezone),
                    q.meta?.endDate ? toSeconds(q.meta.endDate) + 86400 : -Infinity,
                  )}
                  series={[
                    { label: "Visitors", values: data.timeseries.map((p) => p.visitors), color: "--c1" },
                    { label: "Page views", values: data.timeseries.map((p) => p.pageViews), color: "--c2" },
                  ]}
                />
              )}
            </Panel>
            <div class="grid2">
              {PANELS.map(([key, title, tabs]) => {
                const chosen = tabs.find(([d]) => d === query.get(key))?.[0] || tabs[0][0];
                const rows = data.breakdowns[chosen] || [];
                return (
                  <Panel title={title} data-panel={key} actions={<Tabs label={title} tabs={tabs} value={chosen} onChange={(d) => setQuery({ [key]: d === tabs[0][0] ? null : d }, { replace: true })} />}>
                    <BarList
                      caption={tabs.find(([d]) => d === chosen)[1]}
                      rows={rows}
                      display={chosen === "country" ? (r) => countryName(r.value) : undefined}
                      columns={[
                        { key: "visitors", label: "Visitors" },
                        { key: "pageViews", label: "Views" },
                      ]}
                      onPick={(row) => addFilter(query, chosen, row.value)}
                    />
                  </Panel>
                );
              })}
            </div>
          </>
        )}
      </Async>
    </div>
  );
}
