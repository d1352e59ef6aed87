// Overview: the range's headline figures, its time series, and the busiest models and keys.
// Three API calls, fetched together: one time series (every figure per bucket) and two summaries.

import { api } from "../api.js";
import { align, bucketTimes, timeChart } from "../charts.js";
import { fmtCompact, fmtInt, fmtMs, fmtPct, fmtUsd, h, table } from "../dom.js";
import { href } from "../nav.js";
import { resolveRange } from "../range.js";
import { bar, pageHeader, rangePicker, tile } from "../widgets.js";

export async function render(view, { query }) {
  const range = resolveRange(query.get("range") || "24h");
  const span = { start: range.start, end: range.end };
  const [series, byModel, byKey] = await Promise.all([
    api("/admin/analytics/timeseries", { query: { ...span, bucket: range.bucket } }),
    api("/admin/analytics/summary", { query: { ...span, group_by: "model", limit: 5 } }),
    api("/admin/analytics/summary", { query: { ...span, group_by: "key", limit: 5 } }),
  ]);
  const t = byModel.totals;
  const xs = bucketTimes(range.start, range.end, range.bucket);
  const pts = series.points || [];
  const tokens = (t.input_tokens || 0) + (t.output_tokens || 0);

  view.append(
    pageHeader("Overview", rangePicker(range.name)),
    h("section", { class: "tiles", "aria-label": "Totals" },
      tile("Requests", t.requests, fmtInt(t.requests), "requests"),
      tile("Errors", t.errors, fmtInt(t.errors), "errors", fmtPct(t.error_rate)),
      tile("Spend", t.cost_usd, fmtUsd(t.cost_usd), "spend"),
      tile("Tokens", tokens, fmtCompact(tokens), "tokens",
        `${fmtCompact(t.input_tokens)} in · ${fmtCompact(t.output_tokens)} out`),
      tile("Latency p50", t.latency_p50_ms, fmtMs(t.latency_p50_ms), "p50"),
      tile("Latency p95", t.latency_p95_ms, fmtMs(t.latency_p95_ms), "p95")),
    h("section", { class: "charts", "aria-label": "Over time" },
      timeChart("Requests and errors", xs, [
        { label: "requests", values: align(xs, pts, "requests") },
        { label: "errors", values: align(xs, pts, "errors"), color: "#dc2626" },
      ], fmtCompact, { testid: "chart-requests" }),
      timeChart("Spend (USD)", xs, [{ label: "spend", values: align(xs, pts, "cost_usd"), color: "#059669" }],
        fmtUsd, { testid: "chart-spend" }),
      timeChart("Tokens", xs, [
        { label: "input", values: align(xs, pts, "input_tokens") },
        { label: "output", values: align(xs, pts, "output_tokens"), color: "#d97706" },
      ], fmtCompact, { testid: "chart-tokens" }),
      timeChart("Latency", xs, [
        { label: "p50", values: align(xs, pts, "latency_p50_ms", null) },
        { label: "p95", values: align(xs, pts, "latency_p95_ms", null), color: "#7c3aed" },
      ], fmtMs, { testid: "chart-latency" })),
    h("section", { class: "split" },
      top("Top models", "model", byModel, range.name),
      top("Top keys", "key", byKey, range.name)),
  );
}

function top(title, kind, summary, rangeName) {
  const groups = summary.groups || [];
  const max = Math.max(0, ...groups.map((g) => g.requests));
  const name = (g) => (g.group === null ? h("em", null, kind === "key" ? "master key / none" : "none")
    : h("a", { href: href("requests", null, { [kind]: g.group, range: rangeName }) }, g.group));
  return h("section", { class: "card", "data-testid": `top-${kind}s` }, h("h2", null, title),
    table([
      { label: kind === "key" ? "Key" : "Model", cell: name },
      { label: "Requests", num: true, cell: (g) => bar(g.requests, max) },
      { label: "Errors", num: true, cell: (g) => fmtPct(g.error_rate) },
      { label: "Spend", num: true, cell: (g) => fmtUsd(g.cost_usd) },
      { label: "p95", num: true, cell: (g) => fmtMs(g.latency_p95_ms) },
    ], groups));
}
