// A uPlot line/area chart that follows its container's width and the colour scheme.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { num } from "../format.js";
import { useDark } from "../hooks.js";

const DAY = 86_400;
// Daily points get day (or month) ticks: uPlot's default steps would put hour ticks between them.
// 30 and 365 days are uPlot's month and year: it steps those by calendar months and years.
const DAY_INCRS = [1, 2, 3, 7, 14, 30, 60, 90, 180, 365].map((n) => n * DAY);
const utc = (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");
const fmtHour = uPlot.fmtDate("{HH}:{mm}");
const fmtDay = uPlot.fmtDate("{D} {MMM}");
const fmtMonth = uPlot.fmtDate("{MMM}");
const fmtYear = uPlot.fmtDate("{YYYY}");

/** Labels for the x ticks: "14:00" by the hour; "3 Dec" by the day or "Dec" by the month, with
 * the year under the first tick and wherever it changes. */
export function xTickLabels(splits, hourly, incr) {
  if (hourly) return splits.map((s) => fmtHour(utc(s)));
  let year = null;
  return splits.map((s) => {
    const date = utc(s);
    const text = (incr >= 30 * DAY ? fmtMonth : fmtDay)(date);
    const y = fmtYear(date);
    const label = y === year ? text : `${text}\n${y}`;
    year = y;
    return label;
  });
}

const INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 2.5e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9];

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Dates "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS" (site-local) → seconds, shown as UTC. */
export function toSeconds(text) {
  return Date.parse(text.length <= 10 ? text + "T00:00:00Z" : text.replace(/Z?$/, "Z")) / 1000;
}

/** Now as site-local wall-clock seconds, on the same scale as `toSeconds` (local shown as UTC). */
export function localNow(timezone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone: timezone || "UTC", hourCycle: "h23",
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    })
      .formatToParts(new Date())
      .map((p) => [p.type, p.value]),
  );
  return toSeconds(`${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}`);
}

/** The index of the bucket still filling at `now` (the last one starting at or before it, when
 * a later bucket or the period's end follows now), or -1. `end`: the period's end (seconds). */
export function partialIndex(x, now, end) {
  if (now == null || !x.length || now < x[0] || now >= end) return -1;
  let i = x.length - 1;
  while (i > 0 && x[i] > now) i--;
  return i;
}

/** The series' line up to the bucket still filling; that bucket is drawn dashed (a day so far
 * read as a drop in traffic), and buckets after now not at all. */
function untilPartial(partial) {
  const linear = uPlot.paths.linear();
  return (u, seriesIdx, idx0, idx1) => linear(u, seriesIdx, idx0, Math.min(idx1, Math.max(idx0, partial - 1)));
}

function drawPartial(u, partial, colors) {
  if (partial < 1) return;
  const { ctx } = u;
  const x0 = u.valToPos(u.data[0][partial - 1], "x", true);
  const x1 = u.valToPos(u.data[0][partial], "x", true);
  ctx.save();
  ctx.setLineDash([5, 5]);
  u.series.forEach((s, i) => {
    if (i === 0 || !s.show) return;
    const y0 = u.data[i][partial - 1];
    const y1 = u.data[i][partial];
    if (y0 == null || y1 == null) return;
    ctx.strokeStyle = colors[i - 1];
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.beginPath();
    ctx.moveTo(x0, u.valToPos(y0, "y", true));
    ctx.lineTo(x1, u.valToPos(y1, "y", true));
    ctx.stroke();
  });
  ctx.restore();
}

/**
 * x: seconds; series: [{label, values, color (css var name)}]; `hourly` picks time labels.
 * `partial`: the index of the bucket still filling (`partialIndex`), or -1.
 */
export function Chart({ x, series, height = 240, hourly = false, label, partial = -1 }) {
  const box = useRef(null);
  const dark = useDark();
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    // Buckets after the one still filling have not happened: no value, no line.
    const values = series.map((s) => (partial < 0 ? s.values : s.values.map((v, i) => (i > partial ? null : v))));
    const when = uPlot.fmtDate(hourly ? "{D} {MMM} {HH}:{mm}" : "{D} {MMM} {YYYY}");
    const grid = { stroke: cssVar("--grid"), width: 1 };
    const axis = { stroke: cssVar("--muted"), grid, ticks: { show: false }, font: "12px system-ui, sans-serif" };
    const opts = {
      width: Math.max(200, el.clientWidth),
      height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      legend: { show: true, live: true },
      cursor: { points: { size: 7 }, drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        {
          ...axis,
          incrs: hourly ? undefined : DAY_INCRS,
          values: (_u, splits, _i, _space, incr) => {
            const labels = xTickLabels(splits, hourly, incr);
            el.dataset.xTicks = labels.join("|"); // what the axis reads (for tests)
            return labels;
          },
        },
        // Counts: whole-number ticks only.
        { ...axis, size: 50, incrs: INCRS, values: (_u, ticks) => ticks.map((t) => num(t)) },
      ],
      // The legend names the series; values (and the time) only while the cursor is on a point.
      series: [
        { label: "", value: (_u, v) => (v == null ? "" : when(uPlot.tzDate(new Date(v * 1000), "Etc/UTC"))) },
        ...series.map((s, i) => {
          const color = cssVar(s.color);
          return {
            label: s.label,
            stroke: color,
            width: 2,
            fill: i === 0 ? color + "22" : undefined,
            points: { show: x.length < 40 },
            paths: partial > 0 ? untilPartial(partial) : undefined,
            value: (u, v) => (u.cursor.idx == null ? "" : v == null ? "–" : num(v)),
          };
        }),
      ],
    };
    const colors = series.map((s) => cssVar(s.color));
    if (partial > 0) opts.hooks = { draw: [(u) => drawPartial(u, partial, colors)] };
    const plot = new uPlot(opts, [x, ...values], el);
    const observer = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [JSON.stringify(x), JSON.stringify(series), dark, height, hourly, partial]);
  return <div class="chart" ref={box} role="img" aria-label={label} data-partial={partial} />;
}
