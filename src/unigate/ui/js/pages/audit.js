// Audit log: every admin change (keys, teams, credits), newest first, filtered by target.

import { api } from "../api.js";
import { field, fmtTime, h, select, table } from "../dom.js";
import { setQuery } from "../nav.js";
import { pageHeader } from "../widgets.js";

export async function render(view, { query }) {
  const target = query.get("target") || "";
  const limit = ["50", "100", "500", "1000"].includes(query.get("limit")) ? query.get("limit") : "100";
  const answer = await api("/admin/audit", { query: { target, limit } });
  const form = h("form", { class: "filters", "aria-label": "Audit filter" },
    field("Target", h("input", { name: "target", value: target, placeholder: "key id, team id or key:<id>" })),
    field("Show", select("limit", [["50", "50"], ["100", "100"], ["500", "500"], ["1000", "1000"]], limit)),
    h("button", { type: "submit", class: "primary" }, "Filter"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setQuery(Object.fromEntries(new FormData(form)));
  });
  view.append(pageHeader("Audit log"), form,
    h("section", { class: "card" }, table([
      { label: "Time", cell: (e) => h("span", { class: "nowrap" }, fmtTime(e.time)) },
      { label: "Actor", cell: (e) => e.actor },
      { label: "Action", cell: (e) => h("span", { class: "mono" }, e.action) },
      { label: "Target", cell: (e) => h("a", { href: `#/audit?target=${encodeURIComponent(e.target)}`, class: "mono" }, e.target) },
      { label: "Details", cell: (e) => h("code", { class: "details" }, JSON.stringify(e.details)) },
    ], answer.data, { empty: "No admin changes recorded." })));
}
