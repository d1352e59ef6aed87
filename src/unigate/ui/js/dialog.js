// A modal form on <dialog>: focus moves into it, Escape closes it, the page behind is inert.

import { errorBox, h, mount, spinner } from "./dom.js";

/** Opens a form; onSubmit(FormData) may throw (an API error) and the dialog stays open to show it. */
export function formDialog(title, fields, submitLabel, onSubmit, { danger = false } = {}) {
  const status = h("div", { class: "dialog-status", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: danger ? "danger" : "primary" }, submitLabel);
  const cancel = h("button", { type: "button" }, "Cancel");
  const heading = h("h2", { id: "dialog-title" }, title);
  const form = h("form", { class: "dialog-form" }, heading, fields, status, h("div", { class: "actions" }, cancel, submit));
  const dlg = h("dialog", { "aria-labelledby": "dialog-title" }, form);
  cancel.addEventListener("click", () => dlg.close());
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    mount(status, spinner("Saving…"));
    try {
      await onSubmit(new FormData(form));
      dlg.close();
    } catch (e) {
      mount(status, errorBox(e));
    } finally {
      submit.disabled = false;
    }
  });
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  const first = form.querySelector("input, select, textarea");
  if (first) first.focus();
  return dlg;
}
