// Models & deployments: each deployment's breaker state and live figures as the router sees
// them now (/admin/deployments), beside its last 24 hours from the analytics summary.

import { api } from "../api.js";
import { errorBox, fmtInt, fmtMs, fmtPct, h, table } from "../dom.js";
import { href } from "../nav.js";
import { resolveRange } from "../range.js";
import { pageHeader } from "../widgets.js";

const STATE = {
  closed: ["ok", "healthy"],
  half_open: ["warn", "half-open: probing"],
  open: ["bad", "open: not used"],
};

export async function render(view) {
  const range = resolveRange("24h");
  const [deps, summary] = await Promise.all([
    api("/admin/deployments"),
    // the day's figures are a help, not the page: without analytics the health table still shows
    api("/admin/analytics/summary", { query: { start: range.start, end: range.end, group_by: "deployment", limit: 200 } })
      .catch((e) => ({ error: e })),
  ]);
  const day = new Map((summary.groups || []).map((g) => [g.group, g]));
  const rows = deps.data;
  const models = new Set(rows.map((d) => d.model));
  const open = rows.filter((d) => d.state !== "closed").length;
  const fig = (d, name, fmt) => (day.has(d.id) ? fmt(day.get(d.id)[name]) : "–");
  view.append(
    pageHeader("Models & deployments"),
    h("p", null, `${models.size} models on ${rows.length} deployments; `,
      open ? h("strong", null, `${open} not healthy`) : "all healthy", "."),
    summary.error ? errorBox(summary.error) : null,
    h("section", { class: "card" }, table([
      { label: "Model", cell: (d) => d.model },
      { label: "Deployment", cell: (d) => h("a", { href: href("requests", null, { deployment: d.id }), class: "mono" }, d.id) },
      { label: "Provider", cell: (d) => d.provider },
      { label: "Breaker", cell: (d) => {
        const [cls, text] = STATE[d.state] || ["warn", d.state];
        return h("span", { class: `badge ${cls}`, "data-state": d.state }, text,
          d.reopens_in_s !== null && d.reopens_in_s !== undefined ? ` (retry in ${Math.ceil(d.reopens_in_s)} s)` : null);
      } },
      { label: "Error rate (window)", num: true,
        cell: (d) => `${fmtPct(d.error_rate)} of ${fmtInt(d.requests_in_window)}` },
      { label: "In flight", num: true, cell: (d) => fmtInt(d.in_flight) },
      { label: "TTFT (live)", num: true, cell: (d) => fmtMs(d.ttft_ms) },
      { label: "ms / token", num: true, cell: (d) => (d.ms_per_output_token === null ? "–" : d.ms_per_output_token.toFixed(1)) },
      { label: "Requests 24h", num: true, cell: (d) => fig(d, "requests", fmtInt) },
      { label: "Errors 24h", num: true, cell: (d) => fig(d, "error_rate", fmtPct) },
      { label: "p95 24h", num: true, cell: (d) => fig(d, "latency_p95_ms", fmtMs) },
    ], rows, { empty: "No deployments configured." })));
}
