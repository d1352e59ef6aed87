// The hash route: #/page/arg?query. Pages keep their filters and range in the query, so a view
// can be bookmarked, shared and reloaded.

/** #/requests/req_1?model=x -> {page: "requests", arg: "req_1", query: URLSearchParams} */
export function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const cut = raw.indexOf("?");
  const path = cut < 0 ? raw : raw.slice(0, cut);
  const [page, ...rest] = path.split("/");
  return { page: page || "overview", arg: rest.length ? decodeURIComponent(rest.join("/")) : null,
    query: new URLSearchParams(cut < 0 ? "" : raw.slice(cut + 1)) };
}

export function href(page, arg, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return `#/${page}${arg ? "/" + encodeURIComponent(arg) : ""}${s ? "?" + s : ""}`;
}

/** Show the current page with this query (the router renders it again on hashchange). */
export function setQuery(params) {
  const { page, arg } = route();
  location.hash = href(page, arg, params);
}
