// Time-series charts on canvas with the vendored uPlot (loaded by index.html as window.uPlot).

import { h } from "./dom.js";
import { BUCKET_SECONDS } from "./range.js";

export const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

/** The bucket starts from start to end (epoch s), so a bucket without calls is drawn as 0. */
export function bucketTimes(start, end, bucket) {
  const step = BUCKET_SECONDS[bucket];
  const xs = [];
  for (let t = Math.floor(start / step) * step; t < end && xs.length < 2000; t += step) xs.push(t);
  return xs;
}

/** One figure of the API's points, on the xs grid: missing buckets are `fill` (0, or null for a
 * latency: no calls means no latency, a gap in the line). */
export function align(xs, points, figure, fill = 0) {
  const at = new Map();
  for (const p of points) {
    const t = typeof p.t === "number" ? p.t : Date.parse(p.t) / 1000;
    at.set(t, p[figure]);
  }
  return xs.map((t) => (at.has(t) && at.get(t) !== null && at.get(t) !== undefined ? at.get(t) : fill));
}

/** A chart card: title, then the canvas. series: [{label, values, color}]; fmt formats a value. */
export function timeChart(title, xs, series, fmt, { height = 190, testid } = {}) {
  const plot = h("div", { class: "plot" });
  const card = h("figure", { class: "card chart", "data-testid": testid }, h("figcaption", null, title), plot);
  if (typeof window.uPlot !== "function") {
    plot.append("The chart library did not load.");
    return card;
  }
  const opts = {
    width: 320,
    height,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true } },
    axes: [
      { stroke: "#6b7280", grid: { stroke: "#e5e7eb" }, ticks: { stroke: "#e5e7eb" } },
      { stroke: "#6b7280", grid: { stroke: "#e5e7eb" }, ticks: { stroke: "#e5e7eb" },
        values: (u, vals) => vals.map((v) => fmt(v)),
        // as wide as its longest label ("$0.000125", "12000 ms"): none is cut at the card's edge
        size: (u, values) => 18 + 7 * Math.max(3, ...(values || []).map((v) => String(v).length)) },
    ],
    series: [
      { value: (u, v) => (v === null ? "–" : new Date(v * 1000).toISOString().slice(0, 16).replace("T", " ")) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color || COLORS[i % COLORS.length],
        fill: series.length === 1 ? (s.color || COLORS[0]) + "22" : undefined,
        width: 2,
        spanGaps: false,
        points: { show: xs.length < 40 },
        value: (u, v) => (v === null || v === undefined ? "–" : fmt(v)),
      })),
    ],
  };
  const chart = new window.uPlot(opts, [xs, ...series.map((s) => s.values)], plot);
  // sized to its card once it is in the page, and again whenever the card changes width
  const fit = () => {
    const w = Math.floor(plot.clientWidth);
    if (w > 0 && w !== chart.width) chart.setSize({ width: w, height });
  };
  new ResizeObserver(fit).observe(plot);
  requestAnimationFrame(fit);
  return card;
}
