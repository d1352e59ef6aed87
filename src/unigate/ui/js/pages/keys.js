// Keys & teams: create (a key's secret is shown once), change limits and budgets, top up
// credits, rotate and revoke keys. Two API calls to show; each change reloads them. A viewer key
// sees the same tables without the buttons (the gateway would refuse its changes anyway).

import { api, canWrite } from "../api.js";
import { formDialog } from "../dialog.js";
import { errorBox, field, fmtTime, fmtUsd, h, mount, select, spinner, table } from "../dom.js";
import { pageHeader } from "../widgets.js";

const PERIODS = [["monthly", "monthly"], ["weekly", "weekly"], ["daily", "daily"], ["total", "total"]];
const ROLES = [["user", "user: calls models only"], ["viewer", "viewer: also reads the admin API and this dashboard"],
  ["admin", "admin: also changes keys, teams and credits"]];
// a secret just issued: shown above the tables until dismissed, never stored anywhere
let issued = null;

export async function render(view) {
  const holder = h("div");
  view.append(holder);
  await build(holder);
}

async function build(holder) {
  const [keys, teams] = await Promise.all([api("/admin/keys"), api("/admin/teams")]);
  const reload = async () => {
    mount(holder, spinner());
    try {
      await build(holder);
    } catch (e) {
      mount(holder, errorBox(e));
    }
  };
  const teamIds = teams.data.map((t) => t.id);
  const writes = canWrite();
  mount(holder,
    writes ? pageHeader("Keys & teams",
      h("button", { type: "button", class: "primary", onclick: () => keyDialog(null, teamIds, reload) }, "New key"),
      h("button", { type: "button", onclick: () => teamDialog(null, reload) }, "New team"))
      : pageHeader("Keys & teams", h("span", { class: "muted" }, "read only")),
    issued ? secretPanel(issued, reload) : null,
    h("section", { class: "card" }, h("h2", null, "Keys"), table([
      { label: "Name", cell: (k) => k.name || h("em", null, "unnamed") },
      { label: "Id", cell: (k) => h("span", { class: "mono" }, k.id) },
      { label: "Team", cell: (k) => k.team ?? "–" },
      { label: "Status", cell: (k) => keyStatus(k) },
      { label: "Role", cell: (k) => k.role },
      { label: "Models", cell: (k) => (k.models.length ? k.models.join(", ") : "all") },
      { label: "Limits", cell: (k) => limits(k) },
      { label: "Budget", cell: (k) => budget(k) },
      { label: "Created", cell: (k) => h("span", { class: "nowrap" }, fmtTime(k.created_at)) },
      writes ? { label: "Actions", cell: (k) => keyActions(k, teamIds, reload) } : null,
    ].filter(Boolean), keys.data, { empty: "No keys yet: create one." })),
    h("section", { class: "card" }, h("h2", null, "Teams"), table([
      { label: "Name", cell: (t) => t.name },
      { label: "Id", cell: (t) => h("span", { class: "mono" }, t.id) },
      { label: "Models", cell: (t) => (t.models.length ? t.models.join(", ") : "all") },
      { label: "Limits", cell: (t) => limits(t) },
      { label: "Budget", cell: (t) => budget(t) },
      writes ? { label: "Actions", cell: (t) => h("div", { class: "row-actions" },
        h("button", { type: "button", onclick: () => teamDialog(t, reload) }, "Edit"),
        h("button", { type: "button", onclick: () => topUpDialog(`team:${t.id}`, reload) }, "Top up")) } : null,
    ].filter(Boolean), teams.data, { empty: "No teams yet." })));
}

function keyStatus(k) {
  if (k.revoked_at) return h("span", { class: "badge bad" }, "revoked");
  if (k.expires_at && k.expires_at * 1000 < Date.now()) return h("span", { class: "badge bad" }, "expired");
  return h("span", { class: "badge ok" }, "active");
}

function limits(x) {
  const parts = [];
  if (x.rpm !== null) parts.push(`${x.rpm} rpm`);
  if (x.tpm !== null) parts.push(`${x.tpm} tpm`);
  if (x.max_parallel !== null) parts.push(`${x.max_parallel} parallel`);
  return parts.length ? parts.join(" · ") : "none";
}

function budget(x) {
  const parts = [];
  if (x.budget_usd !== null) parts.push(`${fmtUsd(x.budget_usd)} ${x.budget_period || "monthly"}`);
  if (x.uses_credits) parts.push("credits");
  return parts.length ? parts.join(" · ") : "none";
}

function keyActions(k, teamIds, reload) {
  if (k.revoked_at) return h("span", { class: "muted" }, "—");
  const label = k.name || k.id;
  return h("div", { class: "row-actions" },
    h("button", { type: "button", onclick: () => keyDialog(k, teamIds, reload), "aria-label": `Edit ${label}` }, "Edit"),
    h("button", { type: "button", onclick: () => topUpDialog(`key:${k.id}`, reload), "aria-label": `Top up ${label}` }, "Top up"),
    h("button", { type: "button", onclick: () => rotateDialog(k, reload), "aria-label": `Rotate ${label}` }, "Rotate"),
    h("button", { type: "button", class: "danger", onclick: () => revokeDialog(k, reload), "aria-label": `Revoke ${label}` },
      "Revoke"));
}

function secretPanel(s, reload) {
  const code = h("code", { class: "secret", "data-testid": "new-secret" }, s.key);
  const copy = h("button", { type: "button", onclick: async () => {
    try {
      await navigator.clipboard.writeText(s.key);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Select and copy it";
    }
  } }, "Copy");
  return h("section", { class: "card notice", role: "status", "aria-live": "polite" },
    h("h2", null, `Secret for ${s.name || s.id}`),
    h("p", null, "Shown this once: the gateway keeps only its hash. Store it now."),
    h("div", { class: "secret-row" }, code, copy),
    h("button", { type: "button", class: "link", onclick: () => { issued = null; reload(); } }, "Done, hide it"));
}

/** Number inputs: an empty field means "no limit" (null) when editing, and is left out when creating. */
function limitFields(x) {
  const num = (name, label, step = "1") => field(label, h("input", { name, type: "number", min: "0", step,
    value: x && x[name] !== null && x[name] !== undefined ? String(x[name]) : "", placeholder: "no limit" }));
  return [
    field("Models", h("input", { name: "models", value: x ? x.models.join(", ") : "",
      placeholder: "all (or e.g. openai/*, local/smollm2)" }), "Comma-separated ids, aliases or globs."),
    h("div", { class: "grid3" }, num("rpm", "Requests / min"), num("tpm", "Tokens / min"), num("max_parallel", "Parallel")),
    h("div", { class: "grid2" }, num("budget_usd", "Budget (USD)", "0.01"),
      field("Budget period", select("budget_period", PERIODS, (x && x.budget_period) || "monthly"))),
  ];
}

function limitValues(data, editing) {
  const out = {};
  const models = String(data.get("models") || "").split(",").map((m) => m.trim()).filter(Boolean);
  if (editing || models.length) out.models = models;
  for (const name of ["rpm", "tpm", "max_parallel", "budget_usd"]) {
    const raw = String(data.get(name) ?? "").trim();
    if (raw === "") {
      if (editing) out[name] = null;
    } else {
      out[name] = name === "budget_usd" ? Number(raw) : Number.parseInt(raw, 10);
    }
  }
  if (editing || out.budget_usd !== undefined) out.budget_period = data.get("budget_period");
  return out;
}

function keyDialog(k, teamIds, reload) {
  const editing = k !== null;
  const fields = [
    field("Name", h("input", { name: "name", value: editing ? k.name || "" : "", required: !editing, autocomplete: "off" })),
    field("Team", select("team", [["", "none"], ...teamIds.map((t) => [t, t])], editing ? k.team || "" : "")),
    ...limitFields(k),
    field("Pay from credits", h("input", { type: "checkbox", name: "uses_credits", checked: editing && k.uses_credits })),
    field("Role", select("role", ROLES, editing ? k.role : "user")),
    editing ? null : field("First top-up (USD)", h("input", { name: "credits_usd", type: "number", min: "0", step: "0.01",
      placeholder: "none" })),
  ];
  formDialog(editing ? `Edit key ${k.name || k.id}` : "New key", fields, editing ? "Save" : "Create key", async (data) => {
    const body = { ...limitValues(data, editing), uses_credits: data.get("uses_credits") === "on",
      role: data.get("role") };
    const name = String(data.get("name") || "").trim();
    if (name || !editing) body.name = name;
    const team = data.get("team");
    if (team || editing) body.team = team || null;
    const credits = String(data.get("credits_usd") || "").trim();
    if (!editing && credits) {
      body.credits_usd = Number(credits);
      if (data.get("uses_credits") !== "on") delete body.uses_credits; // a top-up turns credits on
    }
    if (editing) {
      await api(`/admin/keys/${encodeURIComponent(k.id)}`, { method: "PATCH", body });
    } else {
      const created = await api("/admin/keys", { method: "POST", body });
      issued = { id: created.id, name: created.name, key: created.key };
    }
    await reload();
  });
}

function teamDialog(t, reload) {
  const editing = t !== null;
  const fields = [
    editing ? null : field("Id", h("input", { name: "id", placeholder: "generated", autocomplete: "off",
      pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}" }), "Letters, digits, _ . -; it names the team in URLs."),
    field("Name", h("input", { name: "name", value: editing ? t.name : "", required: true, autocomplete: "off" })),
    ...limitFields(t),
    field("Pay its keys' calls from the team's credits", h("input", { type: "checkbox", name: "uses_credits",
      checked: editing && t.uses_credits }), "Keys with credits of their own pay from those."),
    editing ? null : field("First top-up (USD)", h("input", { name: "credits_usd", type: "number", min: "0", step: "0.01",
      placeholder: "none" })),
  ];
  formDialog(editing ? `Edit team ${t.name}` : "New team", fields, editing ? "Save" : "Create team", async (data) => {
    const body = { ...limitValues(data, editing), name: String(data.get("name")).trim(),
      uses_credits: data.get("uses_credits") === "on" };
    const id = String(data.get("id") || "").trim();
    if (!editing && id) body.id = id;
    const credits = String(data.get("credits_usd") || "").trim();
    if (!editing && credits) {
      body.credits_usd = Number(credits);
      if (data.get("uses_credits") !== "on") delete body.uses_credits; // a top-up turns credits on
    }
    if (editing) await api(`/admin/teams/${encodeURIComponent(t.id)}`, { method: "PATCH", body });
    else await api("/admin/teams", { method: "POST", body });
    await reload();
  });
}

function topUpDialog(account, reload) {
  const balance = h("p", { class: "muted", "aria-live": "polite" }, "Balance: …");
  api(`/admin/credits/${encodeURIComponent(account)}`, { query: { limit: 1 } })
    .then((c) => { balance.textContent = `Balance: ${fmtUsd(c.balance_usd)}`; })
    .catch((e) => { balance.textContent = `Balance unknown: ${e.message}`; });
  formDialog(`Top up ${account}`, [
    balance,
    field("Amount (USD)", h("input", { name: "amount_usd", type: "number", step: "0.01", required: true }),
      "Negative for an adjustment."),
    field("Note", h("input", { name: "note", maxlength: "1000" })),
  ], "Add credits", async (data) => {
    await api("/admin/credits", { method: "POST",
      body: { account, amount_usd: Number(data.get("amount_usd")), note: String(data.get("note") || "") } });
    await reload();
  });
}

function rotateDialog(k, reload) {
  formDialog(`Rotate ${k.name || k.id}`, [
    h("p", null, "A new secret replaces the current one."),
    field("Old secret keeps working for (seconds)", h("input", { name: "grace_seconds", type: "number", min: "0",
      max: String(30 * 86400), value: "0" })),
  ], "Rotate", async (data) => {
    const out = await api(`/admin/keys/${encodeURIComponent(k.id)}/rotate`, { method: "POST",
      body: { grace_seconds: Number(data.get("grace_seconds") || 0) } });
    issued = { id: out.id, name: out.name, key: out.key };
    await reload();
  });
}

function revokeDialog(k, reload) {
  formDialog(`Revoke ${k.name || k.id}?`, [
    h("p", null, "The key stops working everywhere within a second. This cannot be undone."),
  ], "Revoke key", async () => {
    await api(`/admin/keys/${encodeURIComponent(k.id)}/revoke`, { method: "POST" });
    await reload();
  }, { danger: true });
}
