// The gateway's API, called with the key the operator signed in with. The key lives in
// sessionStorage: it is gone when the tab closes, and no other site can read it.

const STORE = "unigate.key";
// the signed-in key's role ("admin", or "viewer": read only), from /admin/whoami
const ROLE = "unigate.role";

export function getKey() {
  return sessionStorage.getItem(STORE);
}

export function setKey(key, role) {
  sessionStorage.setItem(STORE, key);
  sessionStorage.setItem(ROLE, role);
}

export function clearKey() {
  sessionStorage.removeItem(STORE);
  sessionStorage.removeItem(ROLE);
}

export function getRole() {
  return sessionStorage.getItem(ROLE);
}

/** Whether the key may change things (the gateway refuses a viewer's changes either way). */
export function canWrite() {
  return getRole() !== "viewer";
}

export class ApiError extends Error {
  constructor(message, status, code, param) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

export function headers(key = getKey()) {
  const out = { Accept: "application/json" };
  if (key) out.Authorization = "Bearer " + key;
  return out;
}

/** The error a failed answer carries, from the gateway's envelope (OpenAI's shape). */
export async function errorOf(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  let code = null;
  let param = null;
  try {
    const body = await resp.json();
    const e = body && body.error;
    if (e && typeof e.message === "string") {
      message = e.message;
      code = e.code ?? null;
      param = e.param ?? null;
    }
  } catch {
    // not JSON: the status line says enough
  }
  return new ApiError(message, resp.status, code, param);
}

/** JSON in, JSON out. A 401 (the key was revoked, or the gateway restarted with another master
 * key) tells the app to ask for a key again. */
export async function api(path, { method = "GET", body, query, key, signal } = {}) {
  const init = { method, headers: headers(key), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path + qs(query), init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError("Cannot reach the gateway: " + e.message, 0, "network", null);
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && key === undefined) window.dispatchEvent(new CustomEvent("unigate:unauthorized"));
    throw err;
  }
  return resp.json();
}

/** A file download (the usage CSV): fetched with the key, handed to the browser as a blob. */
export async function download(path, query, filename) {
  const resp = await fetch(path + qs(query), { headers: { ...headers(), Accept: "text/csv" } });
  if (!resp.ok) throw await errorOf(resp);
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
