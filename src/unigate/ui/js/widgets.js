// Pieces several pages share: the range picker, figure tiles, bar cells.

import { field, fmtCompact, h, select } from "./dom.js";
import { PRESETS } from "./range.js";
import { setQuery } from "./nav.js";

/** A labelled range select; choosing one reloads the page with ?range= (and the other params). */
export function rangePicker(current, params = {}) {
  const options = PRESETS.map(([id, label]) => [id, label]);
  if (!PRESETS.some((p) => p[0] === current)) options.push([current, "Custom range"]);
  const control = select("range", options, current, {
    onchange: (ev) => setQuery({ ...params, range: ev.target.value }),
  });
  return field("Range", control);
}

/** A headline figure: the raw value in data-value, so a test can compare it with the API's. */
export function tile(label, value, text, testid, sub) {
  return h("div", { class: "card tile", "data-testid": testid, "data-value": value ?? "" },
    h("div", { class: "tile-label" }, label), h("div", { class: "tile-value" }, text),
    sub ? h("div", { class: "tile-sub" }, sub) : null);
}

/** A number with a bar behind it, its length relative to the largest in the column. */
export function bar(value, max, text = fmtCompact(value)) {
  const pct = max > 0 ? Math.max(1, Math.round((100 * (value || 0)) / max)) : 0;
  const fill = h("span", { class: "bar-fill", "aria-hidden": "true" });
  fill.style.width = `${pct}%`;
  return h("span", { class: "bar" }, fill, h("span", { class: "bar-text" }, text));
}

export function pageHeader(title, ...controls) {
  return h("div", { class: "page-head" }, h("h1", null, title), h("div", { class: "controls" }, controls));
}
