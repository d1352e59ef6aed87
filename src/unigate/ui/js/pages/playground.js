// Playground: chat with any model the gateway serves (the embedded local one included),
// streamed from /v1/chat/completions and shown as it arrives.

import { api, errorOf, headers } from "../api.js";
import { errorBox, field, fmtInt, fmtMs, h, mount, select } from "../dom.js";
import { sseData } from "../sse.js";
import { pageHeader } from "../widgets.js";

// the conversation survives moving to another page and back (not a reload)
const state = { model: null, messages: [] };

export async function render(view) {
  const models = (await api("/v1/models")).data.map((m) => m.id).sort();
  if (!state.model || !models.includes(state.model)) {
    state.model = models.find((m) => m.startsWith("local/")) || models[0] || "";
  }
  const modelSelect = select("model", models.map((m) => [m, m]), state.model);
  const system = h("textarea", { name: "system", rows: "2", placeholder: "optional" });
  const prompt = h("textarea", { name: "prompt", rows: "3", required: true, placeholder: "Ask something…" });
  const maxTokens = h("input", { name: "max_tokens", type: "number", min: "1", max: "32768", value: "256" });
  const temperature = h("input", { name: "temperature", type: "number", min: "0", max: "2", step: "0.1", value: "0.7" });
  const transcript = h("div", { class: "transcript", "aria-live": "polite", "data-testid": "transcript" });
  const stats = h("p", { class: "muted", "data-testid": "stream-stats" });
  const status = h("div");
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const stop = h("button", { type: "button", disabled: true }, "Stop");
  const clearBtn = h("button", { type: "button" }, "New chat");
  let controller = null;

  const turn = (role, text) => h("div", { class: `turn ${role}` }, h("div", { class: "who" }, role),
    h("div", { class: "said" }, text));
  const redraw = () => mount(transcript, state.messages.map((m) => turn(m.role, m.content)));
  redraw();

  const form = h("form", { class: "playground", "aria-label": "Chat" },
    h("div", { class: "grid3" }, field("Model", modelSelect), field("Max tokens", maxTokens),
      field("Temperature", temperature)),
    field("System prompt", system), field("Message", prompt),
    h("div", { class: "actions" }, send, stop, clearBtn));
  prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) form.requestSubmit();
  });
  clearBtn.addEventListener("click", () => { state.messages = []; redraw(); mount(stats); mount(status); });
  stop.addEventListener("click", () => controller && controller.abort());
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    state.model = modelSelect.value;
    state.messages.push({ role: "user", content: text });
    prompt.value = "";
    redraw();
    const said = h("div", { class: "said", "data-testid": "answer" });
    transcript.append(h("div", { class: "turn assistant streaming" }, h("div", { class: "who" }, "assistant"), said));
    mount(status);
    mount(stats, "Waiting for the answer…");
    send.disabled = true;
    stop.disabled = false;
    controller = new AbortController();
    const messages = [...(system.value.trim() ? [{ role: "system", content: system.value.trim() }] : []), ...state.messages];
    let answer = "";
    try {
      answer = await stream({ model: state.model, messages, max_tokens: Number(maxTokens.value) || undefined,
        temperature: temperature.value === "" ? undefined : Number(temperature.value) }, said, stats, controller.signal);
    } catch (e) {
      if (e.name !== "AbortError") mount(status, errorBox(e));
      else mount(stats, stats.textContent + " (stopped)");
      answer = said.textContent;
    } finally {
      send.disabled = false;
      stop.disabled = true;
      controller = null;
    }
    if (answer) state.messages.push({ role: "assistant", content: answer });
    else state.messages.pop(); // nothing came back: the question can be asked again
    said.parentElement.classList.remove("streaming");
  });
  view.append(pageHeader("Playground"), form, status, transcript, stats);
}

async function stream(body, out, stats, signal) {
  const t0 = performance.now();
  const resp = await fetch("/v1/chat/completions", {
    method: "POST", signal,
    headers: { ...headers(), "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!resp.ok) throw await errorOf(resp);
  const rid = resp.headers.get("x-request-id");
  let ttft = null;
  let usage = null;
  // the deployment that answered, as the gateway names it (provider/model)
  let served = resp.headers.get("x-unigate-model");
  for await (const data of sseData(resp.body)) {
    if (data === "[DONE]") break;
    const chunk = JSON.parse(data);
    if (chunk.error) throw new Error(chunk.error.message || "The stream ended with an error.");
    if (!served && chunk.model) served = chunk.model;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices || []) {
      const piece = choice.delta && choice.delta.content;
      if (piece) {
        if (ttft === null) ttft = performance.now() - t0;
        out.append(piece); // a text node: the model's words are never parsed as HTML
      }
    }
  }
  const total = performance.now() - t0;
  const parts = [`first token ${fmtMs(ttft)}`, `total ${fmtMs(total)}`];
  if (usage) parts.push(`${fmtInt(usage.prompt_tokens)} in / ${fmtInt(usage.completion_tokens)} out tokens`);
  if (served) parts.push(`served by ${served}`);
  if (rid) parts.push(`request ${rid}`);
  mount(stats, parts.join(" · "));
  return out.textContent;
}
