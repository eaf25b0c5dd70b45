import { useState } from "preact/hooks";
import { authedFetch, url } from "../api.js";
import { Panel } from "../components/ui.jsx";
import { DIMENSIONS, dimensionLabel, filtersOf, reportParams } from "../view.js";

const FORMATS = [
  ["csv", "CSV"],
  ["json", "JSON"],
  ["parquet", "Parquet"],
];

async function download(params, setStatus) {
  setStatus({ busy: true, error: null });
  try {
    const res = await authedFetch(url("/api/v1/analytics/export", params));
    if (!res.ok) {
      const body = await res.json().catch(() => null);
      throw new Error(body?.error?.message || `HTTP ${res.status}`);
    }
    const name = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "")?.[1] || `cadlink-export.${params.format}`;
    const blob = await res.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    setStatus({ busy: false, error: null, done: name });
  } catch (error) {
    setStatus({ busy: false, error });
  }
}

function Row({ title, text, params, disabled, reason }) {
  const [status, setStatus] = useState({ busy: false, error: null });
  return (
    <div class="export-row" data-export={params.report}>
      <div>
        <strong>{title}</strong>
        <div class="muted">{disabled ? reason : text}</div>
        {status.error && (
          <div class="state error" role="alert">
            {status.error.message}
          </div>
        )}
        {status.done && (
          <div class="muted" role="status">
            Downloaded {status.done}
          </div>
        )}
      </div>
      <div class="row">
        {FORMATS.map(([fmt, name]) => (
          <button type="button" class="button small" disabled={disabled || status.busy} data-format={fmt} onClick={() => download({ ...params, format: fmt }, setStatus)}>
            {name}
          </button>
        ))}
      </div>
    </div>
  );
}

export function Exports({ site, query }) {
  const base = reportParams(site, query);
  const [dimension, setDimension] = useState(query.get("dimension") || "page");
  const filtered = filtersOf(query).length > 0;
  const scope = `${base.startDate} to ${base.endDate}${filtered ? ", with the filters above" : ""}`;
  return (
    <div class="stack">
      <Panel title="This view">
        <Row title="Summary" text={`Visitors, page views, sessions, bounce rate, duration — ${scope}.`} params={{ ...base, report: "summary" }} />
        <Row title="Time series" text={`Visitors, page views and sessions per interval — ${scope}.`} params={{ ...base, report: "timeseries" }} />
        <div class="row" style={{ margin: "8px 0 0" }}>
          <label class="row" style={{ gap: "6px" }}>
            Breakdown by
            <select aria-label="Breakdown dimension" value={dimension} onChange={(e) => setDimension(e.currentTarget.value)}>
              {DIMENSIONS.filter(([k]) => k !== "event_type").map(([k, t]) => (
                <option value={k}>{t}</option>
              ))}
            </select>
          </label>
        </div>
        <Row title={`Breakdown: ${dimensionLabel(dimension)}`} text={`Every ${dimensionLabel(dimension).toLowerCase()} (up to 100,000 rows) — ${scope}.`} params={{ ...base, report: "breakdown", dimension, limit: 100000 }} />
      </Panel>
      <Panel title="Raw data">
        <Row title="Events" text={`Every stored, enriched event, ${base.startDate} to ${base.endDate}. Streamed; large periods take a while.`} params={{ siteId: base.siteId, startDate: base.startDate, endDate: base.endDate, report: "events" }} disabled={filtered} reason="Raw exports take no filters: remove them to export raw events." />
        <Row title="Sessions" text={`Every session that started from ${base.startDate} to ${base.endDate}.`} params={{ siteId: base.siteId, startDate: base.startDate, endDate: base.endDate, report: "sessions" }} disabled={filtered} reason="Raw exports take no filters: remove them to export raw sessions." />
      </Panel>
    </div>
  );
}
