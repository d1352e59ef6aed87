// Building the page without innerHTML: every value reaches the DOM as a text node or an
// attribute value, so a model name or key name such as "<img onerror=...>" shows as text.

/** h("a", {href: "#/x", class: "btn", onclick: fn}, "text", child, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") {
        el.addEventListener(name.slice(2), value);
      } else if (name === "class") {
        el.className = value;
      } else if (name === "value") {
        el.value = value;
      } else if (name === "checked" || name === "selected" || name === "disabled") {
        el[name] = Boolean(value);
      } else {
        el.setAttribute(name, value === true ? "" : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace an element's content with these children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function table(columns, rows, { empty = "Nothing in this range.", caption } = {}) {
  // columns: [{label, cell: row => node|string, num: bool}]
  const head = h("tr", null, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)));
  const body = rows.length
    ? rows.map((r) => h("tr", null, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(r)))))
    : [h("tr", null, h("td", { colspan: columns.length, class: "empty" }, empty))];
  return h("div", { class: "table-wrap" },
    h("table", null, caption ? h("caption", null, caption) : null, h("thead", null, head), h("tbody", null, body)));
}

export function spinner(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

export function errorBox(err) {
  const status = err && err.status ? ` (${err.status})` : "";
  return h("div", { class: "error", role: "alert" }, `${err && err.message ? err.message : String(err)}${status}`);
}

const INT = new Intl.NumberFormat("en-US");
const COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

export function fmtInt(v) {
  return v === null || v === undefined ? "–" : INT.format(Math.round(v));
}

export function fmtCompact(v) {
  return v === null || v === undefined ? "–" : (Math.abs(v) < 10000 ? INT.format(Math.round(v)) : COMPACT.format(v));
}

export function fmtUsd(v) {
  if (v === null || v === undefined) return "–";
  const digits = v !== 0 && Math.abs(v) < 0.01 ? 6 : 2;
  return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: digits });
}

export function fmtMs(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}

export function fmtPct(v) {
  return v === null || v === undefined ? "–" : `${(v * 100).toFixed(v && v < 0.01 ? 2 : 1)}%`;
}

/** A time from the API (epoch seconds or an ISO string) as epoch milliseconds. */
export function toMs(t) {
  if (t === null || t === undefined) return null;
  return typeof t === "number" ? t * 1000 : Date.parse(t);
}

export function fmtTime(t) {
  const ms = toMs(t);
  if (ms === null || Number.isNaN(ms)) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

let fieldIds = 0;

/** A labelled form field; a hint is the control's description, not part of its name. */
export function field(label, control, hint) {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  const help = hint ? h("small", { id: `${id}-hint` }, hint) : null;
  if (help) control.setAttribute("aria-describedby", help.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, help);
}

export function select(name, options, current, attrs = {}) {
  return h("select", { name, ...attrs },
    options.map(([value, label]) => h("option", { value, selected: value === current }, label)));
}
