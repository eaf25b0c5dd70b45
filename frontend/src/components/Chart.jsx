// A uPlot line/area chart that follows its container's width and the colour scheme.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { num } from "../format.js";
import { useDark } from "../hooks.js";

const INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 2.5e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9];

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Dates "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS" (site-local) → seconds, shown as UTC. */
export function toSeconds(text) {
  return Date.parse(text.length <= 10 ? text + "T00:00:00Z" : text.replace(/Z?$/, "Z")) / 1000;
}

/**
 * x: seconds; series: [{label, values, color (css var name)}]; `hourly` picks time labels.
 */
export function Chart({ x, series, height = 240, hourly = false, label }) {
  const box = useRef(null);
  const dark = useDark();
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
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
        { ...axis, values: hourly ? "{HH}:{mm}" : undefined },
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
            value: (u, v) => (u.cursor.idx == null ? "" : v == null ? "–" : num(v)),
          };
        }),
      ],
    };
    const plot = new uPlot(opts, [x, ...series.map((s) => s.values)], el);
    const observer = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [JSON.stringify(x), JSON.stringify(series), dark, height, hourly]);
  return <div class="chart" ref={box} role="img" aria-label={label} />;
}
