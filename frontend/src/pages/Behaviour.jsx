import { useState } from "preact/hooks";
import { Async, BarList, Card, Panel, RevenueCard, Table, Tabs } from "../components/ui.jsx";
import { byCurrency, dateTime, duration, millis, num, pct } from "../format.js";
import { useApi } from "../hooks.js";
import { setQuery } from "../router.js";
import { reportParams } from "../view.js";

const TABS = [
  ["search", "Search"],
  ["engagement", "Engagement"],
  ["vitals", "Web vitals"],
  ["errors", "Errors"],
  ["goals", "Goals"],
  ["experiments", "Experiments"],
];

export function Behaviour({ site, query }) {
  const tab = TABS.find(([k]) => k === query.get("tab"))?.[0] || "search";
  const View = { search: Search, engagement: Engagement, vitals: Vitals, errors: Errors, goals: Goals, experiments: Experiments }[tab];
  return (
    <div class="stack">
      <Tabs label="Report" tabs={TABS} value={tab} onChange={(k) => setQuery({ tab: k === "search" ? null : k })} />
      <View site={site} query={query} />
    </div>
  );
}

function Search({ site, query }) {
  const q = useApi("/api/v1/analytics/search", { ...reportParams(site, query), limit: 10 });
  const two = [{ key: "searches", label: "Searches" }, { key: "visitors", label: "Visitors" }];
  return (
    <Async q={q}>
      {(d) => (
        <>
          <div class="cards">
            <Card name="searches" label="Searches" value={num(d.summary.searches)} raw={d.summary.searches} />
            <Card name="searchers" label="Searchers" value={num(d.summary.searchers)} raw={d.summary.searchers} />
            <Card name="distinctQueries" label="Distinct queries" value={num(d.summary.distinctQueries)} raw={d.summary.distinctQueries} />
            <Card name="zeroResultRate" label="Zero-result rate" value={pct(d.summary.zeroResultRate)} raw={d.summary.zeroResultRate} />
          </div>
          <div class="grid2">
            <Panel title="Top queries">
              <BarList caption="Query" rows={d.topQueries} labelKey="query" valueKey="searches" columns={two} />
            </Panel>
            <Panel title="Queries with no results">
              <BarList caption="Query" rows={d.zeroResultQueries} labelKey="query" valueKey="searches" columns={two} />
            </Panel>
            <Panel title="Filters used">
              <BarList caption="Filter" rows={d.filters} labelKey="filter" valueKey="events" display={(r) => `${r.filter}: ${r.value}`} columns={[{ key: "events", label: "Uses" }, { key: "visitors", label: "Visitors" }]} />
            </Panel>
            <Panel title="Sorts used">
              <BarList caption="Sort" rows={d.sorts} labelKey="sort" valueKey="events" columns={[{ key: "events", label: "Uses" }, { key: "visitors", label: "Visitors" }]} />
            </Panel>
          </div>
        </>
      )}
    </Async>
  );
}

function Engagement({ site, query }) {
  const q = useApi("/api/v1/analytics/engagement", { ...reportParams(site, query), limit: 10 });
  const pageCols = [
    { key: "page", label: "Page" },
    { key: "views", label: "Views", num: true, format: num },
    { key: "avgSeconds", label: "Avg. time", num: true, format: duration },
    { key: "medianSeconds", label: "Median", num: true, format: duration },
    { key: "reached75", label: "Read 75%", num: true, format: (v) => pct(v) },
  ];
  return (
    <Async q={q}>
      {(d) => (
        <>
          <div class="cards">
            <Card name="exits" label="Page exits measured" value={num(d.timeOnPage.exits)} raw={d.timeOnPage.exits} />
            <Card name="avgSeconds" label="Avg. time on page" value={duration(d.timeOnPage.avgSeconds)} raw={d.timeOnPage.avgSeconds} />
            <Card name="medianSeconds" label="Median time on page" value={duration(d.timeOnPage.medianSeconds)} raw={d.timeOnPage.medianSeconds} />
          </div>
          <Panel title="Scroll depth (share of page views reaching it)">
            <BarList caption="Depth" rows={d.scrollDepth.map((r) => ({ ...r, label: `${r.depth}%` }))} labelKey="label" valueKey="share" columns={[{ key: "share", label: "Views", format: (v) => pct(v) }, { key: "visitorShare", label: "Visitors", format: (v) => pct(v) }]} />
          </Panel>
          <div class="grid2">
            <Panel title="Top pages">
              <Table caption="Top pages" rows={d.pages} columns={pageCols} />
            </Panel>
            <Panel title="Most engaging pages">
              <Table caption="Most engaging pages" rows={d.mostEngaged} columns={pageCols} />
            </Panel>
          </div>
        </>
      )}
    </Async>
  );
}

const VITALS = [
  ["lcp", "LCP", millis],
  ["inp", "INP", millis],
  ["cls", "CLS", (v) => (v === null || v === undefined ? "–" : v.toFixed(3))],
  ["fcp", "FCP", millis],
  ["ttfb", "TTFB", millis],
];
const RATING = { good: "good", "needs-improvement": "warn", poor: "bad" };

function Vitals({ site, query }) {
  const q = useApi("/api/v1/analytics/vitals", { ...reportParams(site, query), limit: 15 });
  return (
    <Async q={q} empty={(d) => !d.overall.samples}>
      {(d) => (
        <>
          <div class="cards">
            {VITALS.map(([k, label, fmt]) => (
              <Card name={k} label={`${label} (p75)`} value={fmt(d.overall.p75[k])} raw={d.overall.p75[k]} delta={d.overall.rating[k] ? { text: d.overall.rating[k].replace("-", " "), good: d.overall.rating[k] === "good" ? true : d.overall.rating[k] === "poor" ? false : null } : null} />
            ))}
          </div>
          <Panel title={`Per page (${num(d.overall.samples)} samples)`}>
            <Table
              caption="Web vitals per page"
              rows={d.pages}
              columns={[
                { key: "page", label: "Page" },
                { key: "samples", label: "Samples", num: true, format: num },
                ...VITALS.map(([k, label, fmt]) => ({ key: k, label, num: true, render: (r) => <span class={"badge " + (RATING[r.rating[k]] || "")}>{fmt(r.p75[k])}</span> })),
              ]}
            />
          </Panel>
        </>
      )}
    </Async>
  );
}

function Errors({ site, query }) {
  const q = useApi("/api/v1/analytics/errors", { ...reportParams(site, query), limit: 15 });
  const common = [
    { key: "count", label: "Events", num: true, format: num },
    { key: "visitors", label: "Visitors", num: true, format: num },
    { key: "pages", label: "Pages", num: true, format: num },
    { key: "lastSeen", label: `Last seen (${site.timezone})`, num: true, format: (v) => dateTime(Date.parse(v), site.timezone) },
  ];
  return (
    <Async q={q}>
      {(d) => (
        <>
          <div class="cards">
            <Card name="jsErrors" label="JavaScript errors" value={num(d.summary.jsErrors)} raw={d.summary.jsErrors} />
            <Card name="apiErrors" label="API errors" value={num(d.summary.apiErrors)} raw={d.summary.apiErrors} />
            <Card name="errorVisitorShare" label="Visitors with an error" value={pct(d.summary.errorVisitorShare)} raw={d.summary.errorVisitorShare} />
          </div>
          <Panel title="JavaScript errors">
            <Table caption="JavaScript errors" rows={d.jsErrors} empty="No JavaScript errors. 🎉" columns={[{ key: "message", label: "Message" }, ...common]} />
          </Panel>
          <Panel title="Failing API calls">
            <Table caption="Failing API calls" rows={d.apiErrors} empty="No failing API calls." columns={[{ key: "endpoint", label: "Endpoint", render: (r) => `${r.method || ""} ${r.endpoint || ""}` }, { key: "status", label: "Status", num: true }, ...common]} />
          </Panel>
        </>
      )}
    </Async>
  );
}

function Goals({ site, query }) {
  const q = useApi("/api/v1/analytics/goals", reportParams(site, query));
  return (
    <Async q={q}>
      {(d) => (
        <>
          <div class="cards">
            <Card name="convertingVisitors" label="Converting visitors" value={num(d.summary.convertingVisitors)} raw={d.summary.convertingVisitors} />
            <Card name="conversionRate" label="Conversion rate" value={pct(d.summary.conversionRate)} raw={d.summary.conversionRate} />
            <Card name="completions" label="Completions" value={num(d.summary.completions)} raw={d.summary.completions} />
            <RevenueCard byCurrency={d.summary.revenueByCurrency} />
          </div>
          <Panel title="Goals">
            <Table
              caption="Goals"
              rows={d.goals}
              columns={[
                { key: "goal", label: "Goal" },
                { key: "completions", label: "Completions", num: true, format: num },
                { key: "visitors", label: "Visitors", num: true, format: num },
                { key: "conversionRate", label: "Rate", num: true, format: (v) => pct(v) },
                { key: "revenueByCurrency", label: "Revenue", num: true, render: (r) => byCurrency(r.revenueByCurrency) },
              ]}
            />
          </Panel>
        </>
      )}
    </Async>
  );
}

function Experiments({ site, query }) {
  const prop = query.get("property") || "variant";
  const [draft, setDraft] = useState(prop);
  const q = useApi("/api/v1/analytics/experiments", { ...reportParams(site, query), property: prop });
  return (
    <>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ property: draft.trim() === "variant" ? null : draft.trim() });
        }}
      >
        <label class="row" style={{ gap: "6px" }}>
          Variant property
          <input value={draft} onInput={(e) => setDraft(e.currentTarget.value)} size={14} aria-label="Variant property" />
        </label>
        <button type="submit" class="button small">
          Show
        </button>
      </form>
      <Async q={q} empty={(d) => !d.variants.length}>
        {(d) => (
          <Panel title={`Variants of “${d.property}” (control ${d.control}, exposure ${d.exposureEvent})`}>
            <Table
              caption="Experiment variants"
              rows={d.variants}
              columns={[
                { key: "variant", label: "Variant" },
                { key: "exposures", label: "Visitors", num: true, format: num },
                { key: "conversions", label: "Conversions", num: true, format: num },
                { key: "rate", label: "Rate", num: true, format: (v) => pct(v) },
                { key: "uplift", label: "Uplift", num: true, format: (v) => (v === null || v === undefined ? "–" : (v > 0 ? "+" : "") + pct(v)) },
                { key: "pValue", label: "p-value", num: true, format: (v) => (v === null || v === undefined ? "–" : v < 0.001 ? "< 0.001" : v.toFixed(3)) },
                { key: "significant", label: "Result", render: (r) => (r.variant === d.control ? <span class="badge">control</span> : r.significant ? <span class={"badge " + (r.uplift > 0 ? "good" : "bad")}>significant</span> : <span class="badge">not significant</span>) },
              ]}
            />
            <p class="muted">Conversions: {d.goals.join(", ")}. Two-sided two-proportion z-test against the control; significant when p &lt; 0.05.</p>
          </Panel>
        )}
      </Async>
    </>
  );
}
