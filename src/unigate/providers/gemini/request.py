"""Canonical (OpenAI Chat Completions) request -> Gemini `GenerateContentRequest` body.

REST field names are lowerCamelCase (python-genai `models.py::_GenerateContentConfig_to_mldev`).
Roles: `system`/`developer` -> `systemInstruction`; `assistant` -> `model`; tool results ->
`functionResponse` parts in a `user` turn, whose `name` (required by Gemini) is looked up from
the assistant tool call with the same id, because OpenAI tool messages carry only the id.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from unigate.canonical.effort import gemini_thinking
from unigate.canonical.effort import gemini_uses_levels as _uses_levels
from unigate.canonical.limits import max_output_tokens
from unigate.canonical.tools import refuse_reserved_tool
from unigate.canonical.turns import append_turn
from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.providers.base import FRAME_FIELDS
from unigate.providers.gemini.schema import has_properties, json_schema, openapi_schema
from unigate.providers.media import split_data_url

#: Google's documented escape hatch for function calls that carry no thought signature (history
#: from another model, or a client that dropped `extra_content`): Gemini 3 otherwise answers 400
#: "Function call is missing a thought_signature" (ai.google.dev/gemini-api/docs/thought-signatures
#: FAQ; also what gemini-cli sends, see earendil-works/pi#1825).
SKIP_SIGNATURE = "skip_thought_signature_validator"

_B64 = re.compile(r"[A-Za-z0-9+/=_\-\s]+")
_EXT_MIME = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
    "heic": "image/heic", "heif": "image/heif", "pdf": "application/pdf",
}
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac", "aac": "audio/aac",
               "ogg": "audio/ogg", "opus": "audio/ogg", "pcm16": "audio/pcm", "aiff": "audio/aiff"}
#: OpenAI fields with no Gemini counterpart: dropped and reported in UpstreamRequest.dropped.
#: every canonical field `build_body` reads; the pipeline reports the others (logit_bias, user,
#: metadata, store, ...: no Gemini counterpart) as dropped
READS = FRAME_FIELDS | {"temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty", "google",
                        "parallel_tool_calls", "audio", "logprobs", "top_logprobs", "web_search_options"}


def build_body(body: JSON, model: str, *, schema_mode: str = "openapi") -> tuple[JSON, tuple[str, ...]]:
    """The native body, and the names of request fields that were dropped."""
    dropped: list[str] = []  # what is read but cannot go (parallel_tool_calls: false)
    refuse_reserved_tool(body)
    system, contents = _messages(body.get("messages") or [], sign=_uses_levels(model))
    out: JSON = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools, tool_config = _tools(body, schema_mode)
    if body.get("web_search_options") is not None:
        tools.append({"googleSearch": {}})
    if tools:
        out["tools"] = tools
    if tool_config:
        out["toolConfig"] = tool_config
    if body.get("parallel_tool_calls") is False:
        dropped.append("parallel_tool_calls")  # Gemini has no switch for it
    gen = _generation_config(body, model, schema_mode)
    google = body.get("google")  # Google's own OpenAI-layer escape hatch: extra_body={"google": {...}}
    if isinstance(google, dict):
        _apply_google_extras(google, out, gen)
    if gen:
        out["generationConfig"] = gen
    return out, tuple(dropped)


# ---------------------------------------------------------------------------------- messages


def _messages(msgs: list[Any], *, sign: bool) -> tuple[list[JSON], list[JSON]]:
    system: list[JSON] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}  # tool_call id -> function name, from earlier assistant turns

    def add(role: str, parts: list[JSON]) -> None:
        # Gemini rejects turns without parts; consecutive tool results share one user turn
        append_turn(contents, role, parts, key="parts")

    for i, m in enumerate(msgs):
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            system.extend(_text_parts(content, f"messages[{i}].content", allow_refusal=False))
        elif role == "user":
            add("user", _user_parts(content, i))
        elif role == "assistant":
            parts = _text_parts(content, f"messages[{i}].content", allow_refusal=True)
            calls = list(m.get("tool_calls") or ())
            fc = m.get("function_call")
            if isinstance(fc, dict):  # deprecated single function_call
                calls.append({"id": f"fn_{i}", "type": "function", "function": fc})
            parts.extend(_call_parts(calls, i, names, sign))
            add("model", parts)
        elif role in ("tool", "function"):
            call_id = m.get("tool_call_id")
            name = names.get(call_id) if isinstance(call_id, str) else None
            name = name or (m.get("name") if isinstance(m.get("name"), str) else None)
            if not name:
                raise InvalidRequest(
                    f"messages[{i}].tool_call_id {call_id!r} does not match a tool call of an earlier assistant "
                    "message; Gemini needs the function name of every tool result.",
                    param=f"messages[{i}].tool_call_id",
                )
            add("user", [{"functionResponse": {"name": name, "response": _tool_result(content)}}])
    if not contents and system:
        # Gemini needs at least one turn; a lone system prompt is the user's request
        contents, system = [{"role": "user", "parts": system}], []
    if not contents:
        raise InvalidRequest("Gemini needs at least one user or assistant message.", param="messages")
    return system, contents


def _text_parts(content: Any, where: str, *, allow_refusal: bool) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out = []
    for j, p in enumerate(content):
        t = p.get("type") if isinstance(p, dict) else None
        if t == "text" or (allow_refusal and t == "refusal"):
            text = p.get("text") if t == "text" else p.get("refusal")
            if isinstance(text, str) and text:
                out.append({"text": text})
        else:
            raise UnsupportedFeature(f"'{where}[{j}]': Gemini takes only text here, got {t!r}.", param=f"{where}[{j}]")
    return out


def _user_parts(content: Any, i: int) -> list[JSON]:
    if isinstance(content, str) or content is None:
        return [{"text": content}] if content else []
    out: list[JSON] = []
    for j, p in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        t = p.get("type") if isinstance(p, dict) else None
        if t == "text":
            if p.get("text"):
                out.append({"text": p["text"]})
        elif t == "image_url":
            img = p.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            out.append(_media_part(url, where))
        elif t == "input_audio":
            audio = p.get("input_audio") or {}
            fmt = str(audio.get("format", "wav")).lower()
            out.append({"inlineData": {"mimeType": _AUDIO_MIME.get(fmt, f"audio/{fmt}"), "data": audio.get("data", "")}})
        elif t == "file":
            f = p.get("file") or {}
            if not f.get("file_data"):
                raise UnsupportedFeature(f"'{where}': Gemini cannot read OpenAI file ids; send the file as file_data.",
                                         param=where)
            out.append(_media_part(f["file_data"], where, default_mime="application/pdf"))
        else:
            raise UnsupportedFeature(f"'{where}': content part type {t!r} is not supported by Gemini.", param=where)
    return out


def _media_part(url: Any, where: str, *, default_mime: str = "image/jpeg") -> JSON:
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"'{where}': missing URL.", param=where)
    if url.startswith("data:"):
        mime, payload = split_data_url(url, where)
        if not _B64.fullmatch(payload[:4096]):  # a cheap check on the head of the payload
            raise InvalidRequest(f"'{where}': the data URL is not valid base64.", param=where)
        return {"inlineData": {"mimeType": mime or default_mime, "data": payload}}
    if url.startswith(("http://", "https://", "gs://")):
        # Gemini fetches Files-API URIs, YouTube and (newer API versions) public HTTPS URLs itself.
        path = url.split("?", 1)[0].split("#", 1)[0]
        ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
        return {"fileData": {"mimeType": _EXT_MIME.get(ext, default_mime), "fileUri": url}}
    raise InvalidRequest(f"'{where}': expected an http(s) URL or a base64 data URL.", param=where)


def _call_parts(calls: list[Any], i: int, names: dict[str, str], sign: bool) -> list[JSON]:
    out: list[JSON] = []
    for k, tc in enumerate(calls):
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(f"messages[{i}].tool_calls[{k}] needs function.name.", param=f"messages[{i}].tool_calls[{k}]")
        if isinstance(tc.get("id"), str):
            names[tc["id"]] = fn["name"]
        raw = fn.get("arguments")
        try:
            args = orjson.loads(raw) if isinstance(raw, str) and raw.strip() else (raw if isinstance(raw, dict) else {})
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):  # Gemini's args is an object; a model's broken JSON cannot be sent
            raise InvalidRequest(f"messages[{i}].tool_calls[{k}].function.arguments is not a JSON object.",
                                 param=f"messages[{i}].tool_calls[{k}].function.arguments")
        part: JSON = {"functionCall": {"name": fn["name"], "args": args}}
        google = (tc.get("extra_content") or {}).get("google") if isinstance(tc.get("extra_content"), dict) else None
        sig = google.get("thought_signature") if isinstance(google, dict) else None
        if isinstance(sig, str) and sig:
            part["thoughtSignature"] = sig
        elif k == 0 and sign:  # only the first call of a turn carries one; Gemini 3+ enforces it
            part["thoughtSignature"] = SKIP_SIGNATURE
        out.append(part)
    return out


def _tool_result(content: Any) -> JSON:
    """`functionResponse.response` must be an object: JSON objects go as they are, anything else
    is wrapped as {"result": ...} (the shape python-genai's automatic function calling uses)."""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if isinstance(content, str):
        try:
            value: Any = orjson.loads(content)
        except orjson.JSONDecodeError:
            return {"result": content}
        return value if isinstance(value, dict) else {"result": value}
    return {"result": content}


# ---------------------------------------------------------------------------------- tools


def _tools(body: JSON, schema_mode: str) -> tuple[list[JSON], JSON | None]:
    decls: list[JSON] = []
    for i, t in enumerate(body.get("tools") or ()):
        if t.get("type") != "function":
            raise UnsupportedFeature(f"tools[{i}]: Gemini supports function tools only, got {t.get('type')!r}.",
                                     param=f"tools[{i}].type")
        fn = t["function"]
        d: JSON = {"name": fn["name"]}
        if fn.get("description"):
            d["description"] = fn["description"]
        params = fn.get("parameters")
        if isinstance(params, dict):
            if schema_mode == "json":
                d["parametersJsonSchema"] = json_schema(params)
            else:
                conv = openapi_schema(params)
                if has_properties(conv):  # an OBJECT without properties is refused: omit it
                    d["parameters"] = conv
        decls.append(d)
    choice = body.get("tool_choice")
    if not decls:
        return [], None
    mode = "AUTO"
    allowed: list[Any] | None = None
    if choice == "none":
        mode = "NONE"
    elif choice == "required":
        mode = "ANY"
    elif isinstance(choice, dict) and choice.get("type") == "function":
        mode, allowed = "ANY", [(choice.get("function") or {}).get("name")]
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools") or {}
        keep = {(x.get("function") or {}).get("name") or x.get("name") for x in spec.get("tools") or ()}
        decls = [d for d in decls if d["name"] in keep]
        mode = "ANY" if spec.get("mode") == "required" else "AUTO"
    elif choice not in (None, "auto"):
        raise InvalidRequest(f"Unsupported tool_choice {choice!r}.", param="tool_choice")
    cfg: JSON = {"mode": mode}
    if allowed:
        cfg["allowedFunctionNames"] = allowed
    return [{"functionDeclarations": decls}], ({"functionCallingConfig": cfg} if choice is not None else None)


# ---------------------------------------------------------------------------------- generation config


def _generation_config(body: JSON, model: str, schema_mode: str) -> JSON:
    gen: JSON = {}
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("seed", "seed"),
                     ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        if body.get(src) is not None:
            gen[dst] = body[src]
    mx = max_output_tokens(body)
    if mx is not None:
        gen["maxOutputTokens"] = mx
    stop = body.get("stop")
    if stop:
        gen["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("n") is not None and body["n"] != 1:
        gen["candidateCount"] = body["n"]
    if body.get("logprobs"):
        gen["responseLogprobs"] = True
        if body.get("top_logprobs"):
            gen["logprobs"] = body["top_logprobs"]
    modalities = body.get("modalities")
    if body.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        raise UnsupportedFeature("Audio output is not supported through the Gemini adapter.", param="modalities")
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_object":
        gen["responseMimeType"] = "application/json"
    elif isinstance(rf, dict) and rf.get("type") == "json_schema":
        gen["responseMimeType"] = "application/json"
        schema = (rf.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            if schema_mode == "json":
                gen["responseJsonSchema"] = json_schema(schema)
            else:
                gen["responseSchema"] = openapi_schema(schema, ordered=True)
    thinking = gemini_thinking(body, model)  # canonical.effort's Gemini table
    if thinking is not None:
        gen["thinkingConfig"] = thinking
    return gen


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _camel_keys(v: Any) -> Any:
    if isinstance(v, dict):
        return {_camel(k): _camel_keys(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_camel_keys(x) for x in v]
    return v


def _apply_google_extras(google: JSON, out: JSON, gen: JSON) -> None:
    """`extra_body={"google": {"thinking_config": ..., "safety_settings": [...], "cached_content": ...}}`,
    the names Google's OpenAI-compatible endpoint documents, in snake or camel case."""
    for key, value in google.items():
        k = _camel(key)
        if k == "thinkingConfig" and isinstance(value, dict):
            gen["thinkingConfig"] = {**gen.get("thinkingConfig", {}), **_camel_keys(value)}
        elif k == "safetySettings":
            out["safetySettings"] = _camel_keys(value)
        elif k == "cachedContent":
            out["cachedContent"] = value
