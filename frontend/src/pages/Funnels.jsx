import { useEffect, useState } from "preact/hooks";
import { Async, Panel } from "../components/ui.jsx";
import { duration, num, pct } from "../format.js";
import { useApi } from "../hooks.js";
import { setQuery } from "../router.js";
import { reportParams } from "../view.js";

const EVENT_TYPES = [
  "page_view", "product_view", "product_click", "product_wishlist", "product_compare", "affiliate_click",
  "copied_coupon", "search_query", "form_start", "form_submit", "purchase", "click", "identify",
];
const DEFAULT_STEPS = "page_view,product_view,affiliate_click";
const WINDOWS = [["30m", "30 minutes"], ["1h", "1 hour"], ["1d", "1 day"], ["7d", "7 days"], ["30d", "30 days"]];

/** "30m", "1h", "7d" → minutes (as the API reads `window`). */
function windowMinutes(value) {
  const n = parseInt(value, 10);
  return n * { m: 1, h: 60, d: 1440 }[value.slice(-1)];
}

/** "page_view@/cart" / "affiliate_click[platform=amazon]" ⇄ {type, mode, page, key, value}. */
export function parseStep(text) {
  const m = /^([^@[\]]+)(?:@([^[\]]*))?(?:\[([^=\]]+)=([^\]]*)\])?$/.exec(text.trim());
  if (!m) return { type: text.trim(), mode: "any", page: "", key: "", value: "" };
  const mode = m[2] !== undefined ? "page" : m[3] !== undefined ? "prop" : "any";
  return { type: m[1], mode, page: m[2] || "", key: m[3] || "", value: m[4] || "" };
}

export function stepText(s) {
  const type = s.type.trim();
  if (s.mode === "page" && s.page.trim()) return `${type}@${s.page.trim()}`;
  if (s.mode === "prop" && s.key.trim() && s.value.trim()) return `${type}[${s.key.trim()}=${s.value.trim()}]`;
  return type;
}

function Builder({ initial, window, onRun }) {
  const [steps, setSteps] = useState(initial);
  const [win, setWin] = useState(window);
  // The URL is the state: Back and Forward change the steps and the window under the form.
  useEffect(() => setSteps(initial), [JSON.stringify(initial)]);
  useEffect(() => setWin(window), [window]);
  const update = (i, patch) => setSteps(steps.map((s, j) => (j === i ? { ...s, ...patch } : s)));
  const move = (i, d) => {
    const next = [...steps];
    [next[i], next[i + d]] = [next[i + d], next[i]];
    setSteps(next);
  };
  const valid = steps.length >= 2 && steps.every((s) => /^[A-Za-z0-9_.:-]{1,64}$/.test(s.type.trim()));
  return (
    <form
      class="funnel-builder"
      onSubmit={(e) => {
        e.preventDefault();
        if (valid) onRun(steps.map(stepText).join(","), win);
      }}
    >
      <datalist id="event-types">
        {EVENT_TYPES.map((t) => (
          <option value={t} />
        ))}
      </datalist>
      {steps.map((s, i) => (
        <div class="step-editor" data-step-editor={i + 1}>
          <span class="step-no">{i + 1}</span>
          <input list="event-types" aria-label={`Step ${i + 1} event type`} value={s.type} onInput={(e) => update(i, { type: e.currentTarget.value })} size={16} required />
          <select aria-label={`Step ${i + 1} match`} value={s.mode} onChange={(e) => update(i, { mode: e.currentTarget.value })}>
            <option value="any">any page</option>
            <option value="page">on page</option>
            <option value="prop">with property</option>
          </select>
          {s.mode === "page" && <input aria-label={`Step ${i + 1} page`} placeholder="/cart or /blog/*" value={s.page} onInput={(e) => update(i, { page: e.currentTarget.value })} size={18} />}
          {s.mode === "prop" && (
            <>
              <input aria-label={`Step ${i + 1} property`} placeholder="platform" value={s.key} onInput={(e) => update(i, { key: e.currentTarget.value })} size={10} />
              <span>=</span>
              <input aria-label={`Step ${i + 1} value`} placeholder="amazon" value={s.value} onInput={(e) => update(i, { value: e.currentTarget.value })} size={10} />
            </>
          )}
          <span class="row" style={{ gap: "2px", marginLeft: "auto" }}>
            <button type="button" class="link" disabled={i === 0} onClick={() => move(i, -1)} aria-label={`Move step ${i + 1} up`}>
              ↑
            </button>
            <button type="button" class="link" disabled={i === steps.length - 1} onClick={() => move(i, 1)} aria-label={`Move step ${i + 1} down`}>
              ↓
            </button>
            <button type="button" class="link" disabled={steps.length <= 2} onClick={() => setSteps(steps.filter((_, j) => j !== i))} aria-label={`Remove step ${i + 1}`}>
              Remove
            </button>
          </span>
        </div>
      ))}
      <div class="row" style={{ marginTop: "10px" }}>
        <button type="button" class="button small" disabled={steps.length >= 10} onClick={() => setSteps([...steps, { type: "", mode: "any", page: "", key: "", value: "" }])}>
          + Add step
        </button>
        <label class="row" style={{ gap: "6px" }}>
          Within
          <select aria-label="Conversion window" value={win} onChange={(e) => setWin(e.currentTarget.value)}>
            {WINDOWS.map(([k, t]) => (
              <option value={k}>{t}</option>
            ))}
          </select>
        </label>
        <button type="submit" class="button primary small" disabled={!valid}>
          Show funnel
        </button>
      </div>
    </form>
  );
}

function FunnelChart({ data }) {
  const first = data.steps[0]?.visitors || 0;
  return (
    <div class="funnel" data-testid="funnel">
      <p class="muted">
        {num(data.entered)} entered, {num(data.completed)} completed: <strong>{pct(data.conversionRate)}</strong> conversion within{" "}
        {WINDOWS.find(([v]) => windowMinutes(v) === data.windowMinutes)?.[1] || duration(data.windowMinutes * 60)}.
      </p>
      {data.steps.map((s) => (
        <div class="funnel-step" data-testid="funnel-step" data-step={s.step} data-visitors={s.visitors}>
          <div>
            <span class="step-no">{s.step}</span> <strong>{s.label}</strong>
          </div>
          <div class="funnel-bar-wrap" title={`${s.visitors} visitors`}>
            <div class="funnel-bar" style={{ width: `${first ? (s.visitors / first) * 100 : 0}%` }} />
            <span class="funnel-bar-text">
              {num(s.visitors)} · {pct(s.conversionFromFirst)}
            </span>
          </div>
          <div class="funnel-meta">
            {s.step > 1 && (
              <>
                {pct(s.conversionFromPrevious)} of the previous step · {num(s.dropOff)} dropped off
              </>
            )}
            {s.medianSecondsToNext !== null && (
              <>
                {s.step > 1 ? " · " : ""}median {duration(s.medianSecondsToNext)} to the next step
              </>
            )}
          </div>
        </div>
      ))}
    </div>
  );
}

export function Funnels({ site, query }) {
  const raw = query.get("steps") || DEFAULT_STEPS;
  const window = query.get("window") || "1d";
  const q = useApi("/api/v1/analytics/funnel", { ...reportParams(site, query), steps: raw, window });
  return (
    <div class="stack">
      <Panel title="Steps">
        <Builder initial={raw.split(",").map(parseStep)} window={window} onRun={(steps, win) => setQuery({ steps, window: win === "1d" ? null : win })} />
      </Panel>
      <Panel title="Funnel">
        <Async q={q} empty={(d) => !d.entered}>
          {(data) => <FunnelChart data={data} />}
        </Async>
      </Panel>
    </div>
  );
}
