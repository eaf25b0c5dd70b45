// Building blocks shared by every page: states, panels, cards, tables and tabs.
import { exact, label as labelOf, money, num } from "../format.js";
import { forbiddenText } from "../roles.js";

export function Loading({ text = "Loading…" }) {
  return (
    <div class="state loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      {text}
    </div>
  );
}

/** A failed load. A 403 says what the account lacks and offers no retry: it would fail again. */
export function ErrorBox({ error, retry }) {
  if (error?.status === 403) return <Forbidden />;
  return (
    <div class="state error" role="alert">
      <strong>Could not load this.</strong> <span>{error?.message || String(error)}</span>
      {retry && (
        <button type="button" class="link" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Forbidden() {
  return (
    <div class="state forbidden" role="status" data-testid="forbidden">
      {forbiddenText()}
    </div>
  );
}

export function Empty({ children = "No data for this period." }) {
  return <div class="state empty">{children}</div>;
}

/** Renders loading / error / empty / content for a `useApi` result. */
export function Async({ q, empty, children }) {
  if (q.error) return <ErrorBox error={q.error} retry={q.reload} />;
  if (q.data === null || q.data === undefined) return <Loading />;
  if (empty && empty(q.data)) return <Empty />;
  return <div class={q.loading ? "stack refreshing" : "stack"}>{children(q.data)}</div>;
}

export function Panel({ title, actions, children, class: cls = "", ...rest }) {
  return (
    <section class={"panel " + cls} {...rest}>
      {(title || actions) && (
        <header class="panel-head">
          {title && <h2>{title}</h2>}
          {actions && <div class="panel-actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

/** A metric card; `delta` is {text, good} or null; `raw` is the exact number for tests/titles. */
export function Card({ name, label, value, raw, delta, hint }) {
  return (
    <div class="card" data-metric={name} data-value={raw}>
      <div class="card-label">{label}</div>
      <div class="card-value" title={typeof raw === "number" ? exact(raw) : undefined}>
        {value}
      </div>
      {delta && (
        <div class={"card-delta " + (delta.good === null ? "flat" : delta.good ? "up" : "down")} title={hint}>
          {delta.text}
        </div>
      )}
      {!delta && hint && <div class="card-delta flat">{hint}</div>}
    </div>
  );
}

/**
 * Rows with a bar behind each showing its share of the largest. `onPick(row)` makes rows
 * buttons (e.g. to add a filter).
 */
export function BarList({ rows, labelKey = "value", valueKey = "visitors", format = num, columns = [], onPick, caption, display }) {
  if (!rows || rows.length === 0) return <Empty />;
  const max = Math.max(...rows.map((r) => r[valueKey] || 0), 1);
  return (
    <div class="barlist" role="table" aria-label={caption}>
      <div class="barlist-head" role="row">
        <span role="columnheader">{caption || ""}</span>
        {columns.map((c) => (
          <span role="columnheader" class="num">
            {c.label}
          </span>
        ))}
      </div>
      {rows.map((row) => {
        const text = display ? display(row) : labelOf(row[labelKey]);
        const width = `${Math.max(1, ((row[valueKey] || 0) / max) * 100)}%`;
        const clickable = onPick && row[labelKey] !== null && row[labelKey] !== undefined && row[labelKey] !== "";
        const name = (
          <span class="barlist-label" title={text}>
            {text}
          </span>
        );
        return (
          <div class="barlist-row" role="row" data-row={row[labelKey]}>
            <span class="bar" style={{ width }} aria-hidden="true" />
            <span role="cell" class="barlist-name">
              {clickable ? (
                <button type="button" class="row-button" onClick={() => onPick(row)} title={`Filter by ${text}`}>
                  {name}
                </button>
              ) : (
                name
              )}
            </span>
            {columns.map((c) => (
              <span role="cell" class="num" title={typeof row[c.key] === "number" ? exact(row[c.key]) : undefined}>
                {(c.format || format)(row[c.key], row)}
              </span>
            ))}
          </div>
        );
      })}
    </div>
  );
}

/** A plain table. columns: {key, label, format?, num?, render?}; `onRow` makes rows activatable. */
export function Table({ columns, rows, onRow, caption, rowKey, empty }) {
  if (!rows || rows.length === 0) return <Empty>{empty}</Empty>;
  return (
    <div class="table-wrap">
      <table>
        {caption && <caption class="sr-only">{caption}</caption>}
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" class={c.num ? "num" : ""}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr
              key={rowKey ? row[rowKey] : i}
              class={onRow ? "clickable" : ""}
              tabIndex={onRow ? 0 : undefined}
              onClick={onRow ? () => onRow(row) : undefined}
              onKeyDown={
                onRow
                  ? (e) => {
                      if (e.key === "Enter" || e.key === " ") {
                        e.preventDefault();
                        onRow(row);
                      }
                    }
                  : undefined
              }
            >
              {columns.map((c) => {
                const v = row[c.key];
                return (
                  <td class={c.num ? "num" : ""} title={typeof v === "number" ? exact(v) : undefined}>
                    {c.render ? c.render(row) : c.format ? c.format(v, row) : labelOf(v)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Tabs; `value` is the selected key, `onChange(key)`. */
export function Tabs({ tabs, value, onChange, label }) {
  return (
    <div class="tabs" role="tablist" aria-label={label}>
      {tabs.map(([key, text]) => (
        <button
          type="button"
          role="tab"
          aria-selected={key === value ? "true" : "false"}
          class={key === value ? "tab active" : "tab"}
          onClick={() => onChange(key)}
        >
          {text}
        </button>
      ))}
    </div>
  );
}

/** Revenue in the currency with the most of it, the others beneath: amounts in different
 * currencies are never added up. */
export function RevenueCard({ byCurrency }) {
  const [main, ...rest] = [...byCurrency].sort((a, b) => b.revenue - a.revenue);
  const amount = (c) => `${money(c.revenue)} ${c.currency || "(no currency)"}`;
  return (
    <Card
      name="revenue"
      label="Revenue"
      value={
        main ? (
          <>
            {money(main.revenue)} <span class="card-unit">{main.currency || "(no currency)"}</span>
          </>
        ) : (
          "–"
        )
      }
      raw={main ? main.revenue : 0}
      hint={rest.length ? rest.map(amount).join(" · ") : undefined}
    />
  );
}
