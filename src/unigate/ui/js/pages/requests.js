// Request log (#/requests?filters): newest first, 50 at a time, "Load more" follows the cursor.
// Request detail (#/requests/<id>): the request's figures and each attempt (fallbacks included).

import { api } from "../api.js";
import { errorBox, field, fmtInt, fmtMs, fmtTime, fmtUsd, h, mount, select, spinner, table } from "../dom.js";
import { href, setQuery } from "../nav.js";
import { PRESETS, resolveRange } from "../range.js";
import { pageHeader } from "../widgets.js";

const FILTERS = ["model", "key", "team", "provider", "deployment"];
const PAGE = 50;

export async function render(view, ctx) {
  if (ctx.arg) return detail(view, ctx.arg);
  const { query } = ctx;
  const range = resolveRange(query.get("range") || "24h");
  const filters = {};
  for (const name of [...FILTERS, "status"]) if (query.get(name)) filters[name] = query.get(name);
  const base = { start: range.start, end: range.end, ...filters, limit: PAGE };
  const first = await api("/admin/analytics/requests", { query: base });

  const form = h("form", { class: "filters", "aria-label": "Filters" },
    field("Range", select("range", [...PRESETS.map((p) => [p[0], p[1]]),
      ...(PRESETS.some((p) => p[0] === range.name) ? [] : [[range.name, "Custom range"]])], range.name)),
    FILTERS.map((name) => field(name[0].toUpperCase() + name.slice(1),
      h("input", { name, value: filters[name] || "", placeholder: "any", autocomplete: "off" }))),
    field("Status", select("status", [["", "any"], ["ok", "ok"], ["error", "error"]], filters.status || "")),
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("a", { href: href("requests"), class: "button" }, "Clear"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setQuery(Object.fromEntries(new FormData(form)));
  });

  const body = h("tbody");
  const more = h("button", { type: "button" }, "Load more");
  const status = h("div", { "aria-live": "polite" });
  let cursor = first.next_cursor;
  const addRows = (rows) => {
    for (const r of rows) body.append(logRow(r));
  };
  addRows(first.data);
  if (!first.data.length) body.append(h("tr", null, h("td", { colspan: 9, class: "empty" }, "No requests match.")));
  more.hidden = !cursor;
  more.addEventListener("click", async () => {
    more.disabled = true;
    mount(status, spinner());
    try {
      const next = await api("/admin/analytics/requests", { query: { ...base, cursor } });
      addRows(next.data);
      cursor = next.next_cursor;
      more.hidden = !cursor;
      mount(status);
    } catch (e) {
      mount(status, errorBox(e));
    } finally {
      more.disabled = false;
    }
  });

  const head = ["Time", "Request", "Model", "Key", "Status", "Attempts", "Latency", "Tokens in/out", "Cost"];
  view.append(pageHeader("Requests"), form,
    h("section", { class: "card" },
      h("div", { class: "table-wrap" }, h("table", { "data-testid": "request-log" },
        h("thead", null, h("tr", null, head.map((c, i) => h("th", { scope: "col", class: i >= 5 ? "num" : null }, c)))),
        body)),
      h("div", { class: "pager" }, more, status)));
}

function statusBadge(r) {
  const ok = r.status === "ok";
  const code = r.http_status ? ` ${r.http_status}` : "";
  return h("span", { class: `badge ${ok ? "ok" : "bad"}`, title: r.error || null },
    ok ? "ok" : `${r.error || "error"}${code}`);
}

function logRow(r) {
  return h("tr", null,
    h("td", { class: "nowrap" }, fmtTime(r.ts)),
    h("td", null, h("a", { href: href("requests", r.request_id), class: "mono" }, r.request_id)),
    h("td", null, r.model, r.served_model && r.served_model !== r.model ? h("small", null, ` → ${r.served_model}`) : null),
    h("td", { class: "mono" }, r.key_id ?? h("em", null, "master")),
    h("td", null, statusBadge(r)),
    h("td", { class: "num" }, r.attempts > 1 ? h("span", { class: "badge warn" }, String(r.attempts)) : String(r.attempts ?? 1)),
    h("td", { class: "num" }, fmtMs(r.latency_ms)),
    h("td", { class: "num" }, `${fmtInt(r.input_tokens)} / ${fmtInt(r.output_tokens)}`),
    h("td", { class: "num" }, fmtUsd(r.cost_usd)));
}

async function detail(view, id) {
  let answer;
  try {
    answer = await api(`/admin/analytics/requests/${encodeURIComponent(id)}`);
  } catch (e) {
    view.append(pageHeader("Request"), errorBox(e), h("p", null, h("a", { href: href("requests") }, "Back to the log")));
    return;
  }
  // {request_id, request: <the log's row>, attempts: [...]}: each attempt in order
  const r = answer.request;
  const attempts = answer.attempts || [];
  const facts = [
    ["Request id", h("span", { class: "mono" }, r.request_id)],
    ["Time", fmtTime(r.ts)],
    ["Status", statusBadge(r)],
    ["Model", r.model], ["Served model", r.served_model], ["Provider", r.provider], ["Deployment", r.deployment],
    ["Key", r.key_id ?? "master key"], ["Team", r.team ?? "–"],
    ["Attempts", String(attempts.length || r.attempts || 1)], ["Endpoint", r.endpoint],
    ["Latency", fmtMs(r.latency_ms)], ["Time to first token", fmtMs(r.ttft_ms)],
    ["Tokens in / out", `${fmtInt(r.input_tokens)} / ${fmtInt(r.output_tokens)}`],
    ["Cost", fmtUsd(r.cost_usd)], ["Streamed", r.stream ? "yes" : "no"],
  ];
  view.append(
    pageHeader("Request", h("a", { href: href("requests"), class: "button" }, "Back to the log")),
    h("section", { class: "card" }, h("dl", { class: "facts", "data-testid": "request-facts" },
      facts.map(([k, v]) => [h("dt", null, k), h("dd", null, v ?? "–")]))),
    h("section", { class: "card" }, h("h2", null, attempts.length > 1 ? "Attempts (fell back)" : "Attempts"),
      table([
        { label: "#", num: true, cell: (a) => String(a.attempt) },
        { label: "Provider", cell: (a) => a.provider },
        { label: "Deployment", cell: (a) => a.deployment },
        { label: "Served model", cell: (a) => a.served_model },
        { label: "Outcome", cell: (a) => statusBadge(a) },
        { label: "Latency", num: true, cell: (a) => fmtMs(a.latency_ms) },
        { label: "TTFT", num: true, cell: (a) => fmtMs(a.ttft_ms) },
        { label: "Tokens in/out", num: true, cell: (a) => `${fmtInt(a.input_tokens)} / ${fmtInt(a.output_tokens)}` },
        { label: "Cost", num: true, cell: (a) => fmtUsd(a.cost_usd) },
      ], attempts, { empty: "No attempt recorded." })));
}
