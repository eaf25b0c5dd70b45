// The header controls: site switcher, date range picker, filter bar.
import { useEffect, useRef, useState } from "preact/hooks";
import { setQuery } from "../router.js";
import { DIMENSIONS, PRESETS, addFilter, dimensionLabel, filtersOf, periodOf, removeFilter, takeChipFocus } from "../view.js";

export function SiteSwitcher({ sites, site }) {
  if (!sites || sites.length === 0) return null;
  return (
    <label class="control">
      <span class="sr-only">Site</span>
      <select
        aria-label="Site"
        value={site?.id}
        onChange={(e) => {
          localStorage.setItem("cadlink.site", e.currentTarget.value);
          setQuery({ site: e.currentTarget.value, f: null, user: null });
        }}
      >
        {sites.map((s) => (
          <option value={s.id}>{s.name || s.domain}</option>
        ))}
      </select>
    </label>
  );
}

export function DateRange({ query, site }) {
  const { period, startDate, endDate } = periodOf(query, site?.timezone || "UTC");
  return (
    <div class="control daterange">
      <select
        aria-label="Date range"
        value={period}
        onChange={(e) => {
          const value = e.currentTarget.value;
          if (value === "custom") setQuery({ period: "custom", from: startDate, to: endDate });
          else setQuery({ period: value === "30d" ? null : value, from: null, to: null });
        }}
      >
        {PRESETS.map(([key, text]) => (
          <option value={key}>{text}</option>
        ))}
      </select>
      {period === "custom" ? (
        <span class="custom-range">
          <input
            type="date"
            aria-label="From"
            value={startDate}
            max={endDate}
            onChange={(e) => e.currentTarget.value && setQuery({ from: e.currentTarget.value })}
          />
          <span aria-hidden="true">–</span>
          <input
            type="date"
            aria-label="To"
            value={endDate}
            min={startDate}
            onChange={(e) => e.currentTarget.value && setQuery({ to: e.currentTarget.value })}
          />
        </span>
      ) : (
        <span class="range-text" data-testid="range">
          {startDate === endDate ? startDate : `${startDate} – ${endDate}`}
        </span>
      )}
    </div>
  );
}

const OPS = [
  ["is", "is"],
  ["is_not", "is not"],
  ["contains", "contains"],
];

export function FilterBar({ query }) {
  const filters = filtersOf(query);
  const [adding, setAdding] = useState(false);
  const bar = useRef(null);
  const key = query.getAll("f").join("\n");
  useEffect(() => {
    const text = takeChipFocus();
    if (!text) return;
    const chip = [...bar.current.querySelectorAll(".chip")].find((c) => c.dataset.filter === text);
    chip?.focus();
  }, [key]);
  return (
    <div class="filterbar" aria-label="Filters" ref={bar}>
      {filters.map(([dimension, op, value], i) => {
        const opText = OPS.find(([k]) => k === op)?.[1] || op;
        return (
          <span class="chip" role="group" tabIndex={-1} aria-label={`Filter: ${dimensionLabel(dimension)} ${opText} ${value || "(none)"}`} data-filter={`${dimension}|${op}|${value}`}>
            <span>
              {dimensionLabel(dimension)} <em>{opText}</em> {value || "(none)"}
            </span>
            <button type="button" class="chip-x" aria-label={`Remove filter ${dimensionLabel(dimension)} ${value}`} onClick={() => removeFilter(query, i)}>
              ×
            </button>
          </span>
        );
      })}
      {filters.length > 1 && (
        <button type="button" class="link" onClick={() => setQuery({ f: null })}>
          Clear all
        </button>
      )}
      {adding ? (
        <AddFilter query={query} done={() => setAdding(false)} />
      ) : (
        <button type="button" class="link" onClick={() => setAdding(true)}>
          + Add filter
        </button>
      )}
    </div>
  );
}

function AddFilter({ query, done }) {
  const [dimension, setDimension] = useState("page");
  const [prop, setProp] = useState("");
  const [op, setOp] = useState("is");
  const [value, setValue] = useState("");
  const submit = (e) => {
    e.preventDefault();
    const dim = dimension === "prop" ? "prop:" + prop.trim() : dimension;
    if (!value.trim() || (dimension === "prop" && !prop.trim())) return;
    done();
    addFilter(query, dim, value.trim(), op);
  };
  return (
    <form class="addfilter" onSubmit={submit}>
      <select aria-label="Filter dimension" value={dimension} onChange={(e) => setDimension(e.currentTarget.value)}>
        {DIMENSIONS.map(([k, t]) => (
          <option value={k}>{t}</option>
        ))}
        <option value="prop">Event property…</option>
      </select>
      {dimension === "prop" && (
        <input aria-label="Property name" placeholder="property" value={prop} onInput={(e) => setProp(e.currentTarget.value)} size={10} />
      )}
      <select aria-label="Filter operator" value={op} onChange={(e) => setOp(e.currentTarget.value)}>
        {OPS.map(([k, t]) => (
          <option value={k}>{t}</option>
        ))}
      </select>
      <input aria-label="Filter value" placeholder="value" value={value} onInput={(e) => setValue(e.currentTarget.value)} size={14} autoFocus />
      <button type="submit" class="button small">
        Add
      </button>
      <button type="button" class="link" onClick={done}>
        Cancel
      </button>
    </form>
  );
}
