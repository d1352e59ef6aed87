// Usage explorer: the range's figures per key, team, model or provider, a chart of the top
// groups' requests, and the same breakdown as CSV from the ledger's /admin/usage export.

import { api, download } from "../api.js";
import { align, bucketTimes, timeChart } from "../charts.js";
import { errorBox, field, fmtCompact, fmtInt, fmtMs, fmtPct, fmtUsd, h, mount, select, table } from "../dom.js";
import { href, setQuery } from "../nav.js";
import { PRESETS, resolveRange } from "../range.js";
import { bar, pageHeader } from "../widgets.js";

const GROUPS = [["model", "Model"], ["provider", "Provider"], ["key", "Key"], ["team", "Team"]];
// the request log's filter for each grouping (its `key` filter takes a key id)
const FILTER = { model: "model", provider: "provider", key: "key", team: "team" };

function toLocalInput(epochS) {
  const d = new Date(epochS * 1000);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

export async function render(view, { query }) {
  const groupBy = GROUPS.some((g) => g[0] === query.get("group_by")) ? query.get("group_by") : "model";
  const range = resolveRange(query.get("range") || "24h");
  const span = { start: range.start, end: range.end };
  const [summary, series] = await Promise.all([
    api("/admin/analytics/summary", { query: { ...span, group_by: groupBy, limit: 50 } }),
    api("/admin/analytics/timeseries", { query: { ...span, bucket: range.bucket, group_by: groupBy, limit: 6 } }),
  ]);

  const from = h("input", { type: "datetime-local", name: "from", value: toLocalInput(range.start) });
  const to = h("input", { type: "datetime-local", name: "to", value: toLocalInput(range.end) });
  const presets = select("range", [...PRESETS.map((p) => [p[0], p[1]]), ["custom", "Custom…"]],
    PRESETS.some((p) => p[0] === range.name) ? range.name : "custom");
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "filters", "aria-label": "Usage query" },
    field("Group by", select("group_by", GROUPS, groupBy)),
    field("Range", presets),
    field("From", from), field("To", to),
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("button", { type: "button", onclick: () => exportCsv(groupBy, range, status) }, "Export CSV"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    let name = data.get("range");
    if (name === "custom") {
      const s = Math.floor(Date.parse(from.value) / 1000);
      const e = Math.floor(Date.parse(to.value) / 1000);
      if (!(s < e)) {
        mount(status, errorBox(new Error("From must be before To.")));
        return;
      }
      name = `${s}..${e}`;
    }
    setQuery({ group_by: data.get("group_by"), range: name });
  });

  const groups = summary.groups || [];
  const max = Math.max(0, ...groups.map((g) => g.requests));
  const xs = bucketTimes(range.start, range.end, range.bucket);
  const lines = (series.series || []).map((s) => ({ label: s.group ?? "none", values: align(xs, s.points, "requests") }));
  const label = GROUPS.find((g) => g[0] === groupBy)[1];
  view.append(
    pageHeader("Usage"), form, status,
    lines.length ? h("section", { class: "charts one" },
      timeChart(`Requests by ${label.toLowerCase()} (top ${lines.length})`, xs, lines, fmtCompact, { testid: "chart-usage" }))
      : null,
    h("section", { class: "card" }, table([
      { label, cell: (g) => (g.group === null ? h("em", null, "none")
        : h("a", { href: href("requests", null, { [FILTER[groupBy]]: g.group, range: range.name }) }, g.group)) },
      { label: "Requests", num: true, cell: (g) => bar(g.requests, max, fmtInt(g.requests)) },
      { label: "Errors", num: true, cell: (g) => `${fmtInt(g.errors)} (${fmtPct(g.error_rate)})` },
      { label: "Input tokens", num: true, cell: (g) => fmtInt(g.input_tokens) },
      { label: "Output tokens", num: true, cell: (g) => fmtInt(g.output_tokens) },
      { label: "Spend", num: true, cell: (g) => fmtUsd(g.cost_usd) },
      { label: "p50", num: true, cell: (g) => fmtMs(g.latency_p50_ms) },
      { label: "p95", num: true, cell: (g) => fmtMs(g.latency_p95_ms) },
      { label: "p99", num: true, cell: (g) => fmtMs(g.latency_p99_ms) },
      { label: "TTFT p50", num: true, cell: (g) => fmtMs(g.ttft_p50_ms) },
    ], groups, { caption: `${fmtInt(summary.totals.requests)} requests, ${fmtUsd(summary.totals.cost_usd)}` })),
  );
}

async function exportCsv(groupBy, range, status) {
  mount(status);
  try {
    // the ledger's own export: the same totals per group, from the usage table
    await download("/admin/usage", { since: Math.floor(range.start), until: Math.ceil(range.end), group_by: groupBy,
      format: "csv" }, `usage-${groupBy}.csv`);
  } catch (e) {
    mount(status, errorBox(e));
  }
}
