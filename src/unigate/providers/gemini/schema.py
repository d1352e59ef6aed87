"""JSON Schema (as OpenAI clients send it) -> what Gemini accepts.

Gemini has two schema fields for both tools and structured output:

- `parameters` / `responseSchema` take Google's OpenAPI-3.0 *subset* (`Schema` message). Every
  API version and model accepts them, but the REST parser rejects any key the proto does not
  have with `400 Invalid JSON payload received. Unknown name "additionalProperties"` (also seen
  for `$schema`, `const`, `propertyNames`, `uniqueItems`, `multipleOf`, `exclusiveMinimum`, `$ref`
  — e.g. nanbingxyz/5ire#42, router-for-me/CLIProxyAPI#97, openswarm-ai/openswarm#24,
  decolua/9router#2309), insists on `properties`/`required` only under OBJECT and `items` only
  under ARRAY ("only allowed for OBJECT type", anomalyco/opencode#11888), cannot take a type list
  (`["string","null"]`: "Proto field is not repeating"), and refuses an OBJECT with empty
  `properties` at the top of a function declaration (agno-agi/agno#2112). `openapi_schema()`
  rewrites a schema onto that subset: `$ref` inlined, `oneOf` -> `anyOf`, nullable unions folded,
  `const` -> `enum`, everything else dropped.
- `parametersJsonSchema` / `responseJsonSchema` take real JSON Schema (newer models, v1beta).
  `json_schema()` only strips what that endpoint still refuses: `$schema`, and siblings of `$ref`
  other than `description`/`default` ("Schema.ref was set alongside unsupported fields",
  anomalyco/opencode#12295).
"""

from __future__ import annotations

from typing import Any

from unigate.canonical.types import JSON

#: keys of Gemini's `Schema` message (v1beta REST reference), in JSON form.
_ALLOWED = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
#: `format` values the Schema message documents; others have been refused with a 400.
_FORMATS = frozenset({"enum", "date-time", "int32", "int64", "float", "double"})
_MAX_REF_DEPTH = 8


def openapi_schema(schema: Any, *, ordered: bool = False) -> JSON:
    """A copy of `schema` on Gemini's OpenAPI subset. `ordered` adds `propertyOrdering` so a
    structured answer keeps the caller's key order (Gemini otherwise sorts keys)."""
    if not isinstance(schema, dict):
        return {"type": "object"}
    return _Converter(schema, ordered).node(schema, 0)


def json_schema(schema: Any) -> JSON:
    """A copy of `schema` for `parametersJsonSchema` / `responseJsonSchema`."""
    if not isinstance(schema, dict):
        return {"type": "object"}
    return _clean_json_object(schema)


def has_properties(schema: JSON) -> bool:
    return bool(schema.get("properties")) or bool(schema.get("anyOf"))


class _Converter:
    __slots__ = ("ordered", "root")

    def __init__(self, root: JSON, ordered: bool) -> None:
        self.root, self.ordered = root, ordered

    def node(self, s: Any, depth: int) -> JSON:
        if not isinstance(s, dict):
            return {}
        if "$ref" in s:
            return self._ref(s, depth)
        s = self._merge_all_of(s)
        out: JSON = {}
        nullable = bool(s.get("nullable"))
        typ = s.get("type")
        if isinstance(typ, list):
            kinds = [t for t in typ if t in _TYPES and t != "null"]
            nullable = nullable or "null" in typ
            typ = kinds[0] if kinds else None
            if len(kinds) > 1:  # ["string", "integer"]: a union, one branch per type
                out["anyOf"] = [self.node({**s, "type": k}, depth + 1) for k in kinds]
                typ = None
        if typ == "null":
            typ, nullable = None, True
        branches = s.get("anyOf") or s.get("oneOf")
        if isinstance(branches, list) and "anyOf" not in out:
            real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            nullable = nullable or len(real) < len(branches)
            conv = [self.node(b, depth + 1) for b in real]
            if len(conv) == 1 and typ is None:
                out.update(conv[0])  # Optional[X] written as anyOf [X, null]
                typ = out.pop("type", None)
            elif conv:
                out["anyOf"] = conv
        if typ is None and ("properties" in s or "required" in s):
            typ = "object"
        if typ is None and "items" in s:
            typ = "array"
        if isinstance(typ, str) and typ in _TYPES:
            out["type"] = typ
        if nullable:
            out["nullable"] = True
        if "const" in s and "enum" not in s:
            s = {**s, "enum": [s["const"]]}
        for k, v in s.items():
            if k in ("type", "anyOf", "oneOf", "nullable", "properties", "required", "items") or k not in _ALLOWED:
                continue
            if k == "enum":
                vals = [e for e in v if e is not None] if isinstance(v, list) else []
                if vals and all(isinstance(e, str) for e in vals):
                    out["enum"] = vals  # the subset's enum is for STRING only
                    out.setdefault("type", "string")
                continue
            if k == "format" and v not in _FORMATS:
                continue
            out[k] = v
        if out.get("type") == "object" and isinstance(s.get("properties"), dict):
            props = {str(n): self.node(p, depth + 1) for n, p in s["properties"].items()}
            if props:
                out["properties"] = props
                req = [r for r in s.get("required") or () if r in props]
                if req:
                    out["required"] = req
                if self.ordered:
                    out["propertyOrdering"] = list(props)
        if out.get("type") == "array" and ("items" in s or "items" not in out):
            items = s.get("items")
            if isinstance(items, list):  # tuple form: the subset has no prefixItems
                items = items[0] if items else None
            # ARRAY needs `items`; an untyped list becomes a list of strings
            out["items"] = (self.node(items, depth + 1) if isinstance(items, dict) else {}) or {"type": "string"}
        return out

    def _ref(self, s: JSON, depth: int) -> JSON:
        target = _resolve(self.root, s["$ref"]) if depth < _MAX_REF_DEPTH else None
        if target is None:  # unresolvable or too deep (recursive): a free-form value
            out: JSON = {"type": "object"}
        else:
            out = self.node(target, depth + 1)
        if isinstance(s.get("description"), str):
            out["description"] = s["description"]
        return out

    @staticmethod
    def _merge_all_of(s: JSON) -> JSON:
        parts = s.get("allOf")
        if not isinstance(parts, list):
            return s
        merged: JSON = {k: v for k, v in s.items() if k != "allOf"}
        for p in parts:
            if not isinstance(p, dict):
                continue
            for k, v in p.items():
                if k == "properties" and isinstance(v, dict):
                    merged["properties"] = {**(merged.get("properties") or {}), **v}
                elif k == "required" and isinstance(v, list):
                    merged["required"] = [*(merged.get("required") or []), *v]
                else:
                    merged.setdefault(k, v)
        return merged


def _resolve(root: JSON, ref: Any) -> JSON | None:
    """A local JSON pointer (`#/$defs/X`, `#/definitions/X`, `#/properties/a`); None otherwise."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for raw in ref[1:].split("/"):
        if not raw:
            continue
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node if isinstance(node, dict) else None


def _clean_json(s: Any) -> Any:
    if isinstance(s, list):
        return [_clean_json(x) for x in s]
    if not isinstance(s, dict):
        return s
    return _clean_json_object(s)


def _clean_json_object(s: JSON) -> JSON:
    if "$ref" in s:
        return {k: v for k, v in s.items() if k in ("$ref", "description", "default")}
    out: JSON = {}
    for k, v in s.items():
        if k == "$schema":
            continue
        if k in ("properties", "$defs", "definitions", "patternProperties") and isinstance(v, dict):
            out[k] = {n: _clean_json(p) for n, p in v.items()}  # names here are not keywords
        else:
            out[k] = _clean_json(v)
    return out
