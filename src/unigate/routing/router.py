"""Model name -> the ordered deployments to try.

A name is, in order of precedence: an alias from the config (a list of targets), the public
name of one or more configured deployments (a group), a direct `provider/model` id for a
configured provider, or a bare vendor name (`claude-sonnet-4-5`, `gpt-4.1-mini`) resolved to
the providers that serve it (bare.py).

A name resolves once into a route (cached); a route orders its deployments per request: a group
by its strategy (strategies.py, within priority tiers), then the group's fallbacks; an alias
its targets in turn. Every ordering goes through the circuit breakers (health.py), which take
an open deployment out unless nothing else is left.

While no breaker is tripped and no other worker has reported an opening (the usual state), the
breakers would pass any order through unchanged, so a group without fallbacks skips them: its
plan is the strategy's `targets` (`resolve`), and `planned` gives it without the request's token
estimates when the strategy reads none. One tripped breaker anywhere sends every group back
through `select` until it closes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from unigate.catalog import ModelInfo
from unigate.config import Config, GroupConfig, model_name_problem
from unigate.errors import InvalidRequest, ModelNotFound
from unigate.providers.base import Deployment, Provider
from unigate.providers.presets import PRESETS
from unigate.providers.registry import adapter_for, key_env_names, with_credentials
from unigate.routing.auto import AutoPicker
from unigate.routing.auto import Candidate as AutoCandidate
from unigate.routing.auto import matches as auto_matches
from unigate.routing.bare import BareNames, Resolution, bedrock_vendor_names, strip_client_suffix
from unigate.routing.health import BreakerConfig, Breakers, SnapshotHealthStore
from unigate.routing.latency import LiveStats
from unigate.routing.retry import RetryBudget
from unigate.routing.strategies import (
    NO_FACTS,
    STREAM_FACTS,
    Candidate,
    Group,
    RequestFacts,
    Strategy,
    T,
    strategy,
)

_NO_GROUP = GroupConfig()
_MAX_DEPTH = 5


def _dep_id(d: Deployment) -> str:
    return d.id


def _has(deps: list[Deployment], d: Deployment) -> bool:
    return any(x is d for x in deps)  # identity: a Deployment's field-wise == is not needed


def _cand_id(c: Candidate[Deployment]) -> str:
    return c.id


def _distinct(group: Group[Deployment]) -> bool:
    return len({id(c.target) for c in group.candidates}) == len(group.candidates)


@dataclass(slots=True)
class _GroupRoute:
    group: Group[Deployment]
    strategy: Strategy
    fallbacks: tuple[str, ...]


@dataclass(slots=True)
class _ListRoute:
    """An alias's targets (names, resolved in turn), or one fixed deployment."""

    targets: tuple[str, ...] = ()
    fixed: Deployment | None = None
    fallbacks: tuple[str, ...] = ()


class Router:
    def __init__(self, cfg: Config, providers: dict[str, Provider], extra: Iterable[Deployment] = (), *,
                 now: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self.providers = providers
        self.live = LiveStats(now=now)
        self.live.track_usage = any(g.strategy == "usage" for g in cfg.routing.groups.values())
        b = cfg.routing.breaker
        #: openings other workers found (health_sync.py fills it when there are other workers)
        self.shared_health = SnapshotHealthStore(now)
        self.breakers = Breakers(BreakerConfig(window=b.window, threshold=b.threshold, min_requests=b.min_requests,
                                               cooldown=b.cooldown, max_cooldown=b.max_cooldown), now=now,
                                 store=self.shared_health)
        self.retry_budget = RetryBudget(ratio=cfg.routing.retry_budget, now=now)
        self.rng = rng or random.Random()
        self._direct: dict[str, Deployment] = {}
        members: dict[str, list[Candidate[Deployment]]] = {}
        for d in extra:
            self._direct[d.public_id] = d
        for i, dc in enumerate(cfg.deployments):
            pid, _, model = dc.model.partition("/")
            prov = providers.get(pid)
            if prov is None:
                # A deployment on a provider with no credentials is left out, not fatal: the
                # same config serves environments where only some providers are set up.
                continue
            if dc.api_key or dc.base_url:
                prov = with_credentials(prov, dc.api_key, dc.base_url)  # a pool of keys is several deployments
            dep = Deployment(
                id=f"{dc.name}#{i}",
                provider=prov,
                model=model,
                adapter=adapter_for(prov.preset.dialect),
                timeouts=dc.timeouts or prov.timeouts,
                weight=dc.weight,
                input_price=dc.input_price,
                output_price=dc.output_price,
            )
            dep.tracked = True
            members.setdefault(dc.name, []).append(Candidate(
                target=dep, id=dep.id, weight=dc.weight, priority=dc.priority, rpm=dc.rpm, tpm=dc.tpm,
                input_price=dc.input_price, output_price=dc.output_price, live=self.live.figures(dep.id)))
        self._groups_cfg = dict(cfg.routing.groups)
        self._members = members
        self._aliases = dict(cfg.aliases)
        self.bare = BareNames(cfg.routing.bare_names, providers,
                              [d.model for d in self._direct.values() if d.provider.id == "local"])
        self._routes: dict[str, _GroupRoute | _ListRoute] = {}
        self._lone: dict[str, Deployment] = {}
        #: groups without fallbacks whose targets are distinct: with every breaker closed, the
        #: strategy's order is the plan (no select, no de-duplication)
        self._quick: dict[str, _GroupRoute] = {}
        self._auto: AutoPicker | None = None
        self._auto_models = tuple(cfg.routing.auto.models)
        #: any group retries: only then does a call need its group's retry count
        self.retrying = any(g.retries for g in cfg.routing.groups.values())

    def names(self) -> list[str]:
        return sorted({*self._members, *self._aliases})

    def direct_deployments(self) -> list[Deployment]:
        return list(self._direct.values())

    def group_deployments(self) -> list[Deployment]:
        return [c.target for cands in self._members.values() for c in cands]

    def known_deployments(self) -> list[Deployment]:
        """Every deployment this router has: configured, embedded, and those direct ids and bare
        names made since start (for the admin surface)."""
        seen: dict[str, Deployment] = {d.id: d for d in (*self.group_deployments(), *self._direct.values())}
        for route in self._routes.values():
            if isinstance(route, _GroupRoute):
                for c in route.group.candidates:
                    seen.setdefault(c.id, c.target)
            elif route.fixed is not None:
                seen.setdefault(route.fixed.id, route.fixed)
        return list(seen.values())

    def retries_for(self, name: str) -> int:
        return self._groups_cfg.get(name, _NO_GROUP).retries

    def auto_plan(self, policy: str, facts: RequestFacts, needs: frozenset[str],
                  allow: Callable[[str], bool] | None = None) -> tuple[list[Deployment], str]:
        """`auto`'s choice for this request and why (routing/auto.py)."""
        if self._auto is None:
            self._auto = self._make_auto()
        picker = self._auto
        if allow is not None:
            picker = AutoPicker([c for c in picker.candidates if allow(c.dep.public_id)], self._latency,
                                self._error_rate, self._available)
        return picker.plan(policy, needs, facts.input_tokens, facts.output_tokens, facts.stream)

    def _make_auto(self) -> AutoPicker:
        from unigate import catalog

        patterns = self._auto_models
        found: dict[str, AutoCandidate] = {}

        def add(dep: Deployment, info: ModelInfo | None, local: bool) -> None:
            if info is None or "embeddings" in info.capabilities or dep.public_id in found:
                return  # auto picks only what the catalog knows, and chat models only
            if patterns and not auto_matches(patterns, dep.public_id):
                return
            dep.tracked = True
            found[dep.public_id] = AutoCandidate(dep, info, local)

        for d in self.group_deployments():
            add(d, catalog.lookup(d.provider.preset.id, d.model), False)
        native = [pid for pid, p in self.providers.items() if p.preset.id == pid]
        for info in catalog.models_for(native):
            route = self._route(info.id)
            if isinstance(route, _ListRoute) and route.fixed is not None:
                add(route.fixed, info, False)
        for d in self._direct.values():
            add(d, catalog.lookup(d.provider.preset.id, d.model), d.provider.id == "local")
        return AutoPicker(list(found.values()), self._latency, self._error_rate, self._available)

    def _latency(self, d: Deployment, stream: bool) -> float | None:
        ewma = self.live.figures(d.id).latency(stream)
        return ewma.value if ewma.measured(self.live.now(), self.live.config.stale_after) else None

    def _error_rate(self, d: Deployment) -> float:
        return self.breakers.state(d.id).error_rate

    def _available(self, deps: list[Deployment]) -> list[Deployment]:
        return self.breakers.select_items(deps, _dep_id)

    def planned(self, name: str, body: Mapping[str, Any]) -> list[Deployment] | None:
        """The plan for `name` when it needs nothing of the request but its `stream` flag: a lone
        deployment, or a group (resolved before, no fallbacks) whose strategy reads no token
        estimate, while every breaker is closed. None: build the facts and `resolve`."""
        lone = self._lone.get(name)
        if lone is not None:
            return [lone]
        quick = self._quick.get(name)
        if (quick is not None and not quick.strategy.reads_tokens and not self.breakers.tripped
                and not self.shared_health.remote):
            return quick.strategy.targets(quick.group, STREAM_FACTS if body.get("stream") is True else NO_FACTS)
        return None

    def resolve(self, name: str, facts: RequestFacts = NO_FACTS) -> list[Deployment]:
        """The deployments to try for `name`, first choice first. Raises ModelNotFound."""
        quick = self._quick.get(name)
        # `self.breakers.closed()`, as two attribute reads (the breakers' store is shared_health)
        if quick is not None and not self.breakers.tripped and not self.shared_health.remote:
            return quick.strategy.targets(quick.group, facts)
        out: list[Deployment] = []
        self._order(name, facts, out, 0)
        return out

    def _order(self, name: str, facts: RequestFacts, out: list[Deployment], depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ModelNotFound(f"alias {name!r} nests too deeply", param="model")
        route = self._route(name)
        breakers = self.breakers
        if isinstance(route, _GroupRoute):
            for c in breakers.select_items(route.strategy.order(route.group, facts), _cand_id):
                if not _has(out, c.target):
                    out.append(c.target)
        elif route.fixed is not None:
            # a lone deployment is tried whatever its breaker says: there is nothing else
            if not _has(out, route.fixed):
                out.append(route.fixed)
        else:
            start = len(out)
            for t in route.targets:
                self._order(t, facts, out, depth + 1)
            # an alias's targets are alternatives: their health decides, as in a group
            part = out[start:]
            for d in part:
                d.tracked = True
            out[start:] = breakers.select_items(part, _dep_id)
        for fb in route.fallbacks:
            start = len(out)
            try:
                self._order(fb, facts, out, depth + 1)
            except ModelNotFound:
                continue  # a fallback not configured here (its provider has no key) is skipped
            for d in out[start:]:
                d.tracked = True

    def _route(self, name: str) -> _GroupRoute | _ListRoute:
        route = self._routes.get(name)
        if route is None:
            if name.endswith("]"):
                # Claude Code's `[1m]` context selector is the client's, not part of the model id
                stripped = strip_client_suffix(name) or name
                route = self._route(stripped)
            else:
                route = self._make_route(name)
            if len(self._routes) < 10_000:
                self._routes[name] = route
                if isinstance(route, _ListRoute) and route.fixed is not None and not route.fallbacks:
                    self._lone[name] = route.fixed
                elif isinstance(route, _GroupRoute) and not route.fallbacks and _distinct(route.group):
                    self._quick[name] = route
        return route

    def _make_route(self, name: str) -> _GroupRoute | _ListRoute:
        fallbacks = tuple(self._groups_cfg.get(name, _NO_GROUP).fallbacks)
        if name in self._aliases:
            return _ListRoute(targets=tuple(self._aliases[name]), fallbacks=fallbacks)
        if name in self._members:
            gc = self._groups_cfg.get(name, _NO_GROUP)
            cands = self._members[name]
            if gc.strategy == "lowest-cost":
                _fill_prices(cands)
            return _GroupRoute(Group(name, cands), strategy(gc.strategy, self.live, self.rng), fallbacks)
        deps = self._lookup(name)
        if len(deps) == 1:
            return _ListRoute(fixed=deps[0], fallbacks=fallbacks)
        # a bare name several providers serve: the resolution's order, breakers applied
        for d in deps:
            d.tracked = True
        return _GroupRoute(Group(name, [Candidate(target=d, id=d.id, live=self.live.figures(d.id)) for d in deps]),
                           _Ordered(self.live, self.rng), fallbacks)

    def _lookup(self, name: str) -> list[Deployment]:
        if name in self._direct:
            return [self._direct[name]]
        pid, sep, model = name.partition("/")
        prov = self.providers.get(pid) if sep else None
        if prov is not None and model:
            check_model_name(model)
            return [self._on(prov, model)]
        if not sep or pid not in PRESETS:
            return self._bare(name)
        local = [d.public_id for d in self._direct.values() if d.provider.id == "local"]
        raise ModelNotFound(_not_found_message(name, self.providers, local), param="model")

    def _on(self, prov: Provider, model: str) -> Deployment:
        return Deployment(id=f"{prov.id}/{model}", provider=prov, model=model,
                          adapter=adapter_for(prov.preset.dialect), timeouts=prov.timeouts)

    def _bare(self, name: str) -> list[Deployment]:
        """A vendor's name without our `provider/` prefix (bare.py), as an ordered fallback list."""
        check_model_name(name)
        res = self.bare.resolve(name)
        if not res.targets or res.ambiguous:
            raise ModelNotFound(_bare_not_found(name, res, self.providers), param="model")
        return [self._direct[f"{pid}/{m}"] if pid == "local" else self._on(self.providers[pid], m)
                for pid, m in res.targets]

    def bare_name_of(self, public_id: str) -> str | None:
        """The bare name that resolves to `public_id` first, if there is one (for /v1/models)."""
        pid, _, model = public_id.partition("/")
        prov = self.providers.get(pid)
        names = bedrock_vendor_names(model) if prov is not None and prov.preset.dialect == "bedrock" else (model,)
        for name in names:
            if name in self._members or name in self._aliases or name.partition("/")[0] in PRESETS:
                continue  # that name means something else here
            res = self.bare.resolve(name)
            if res.targets and not res.ambiguous and res.targets[0] == (pid, model):
                return name
        return None


def check_model_name(model: str) -> None:
    """Refused here, once, for every dialect; adapters still percent-encode what they put in a path."""
    problem = model_name_problem(model)
    if problem:
        raise InvalidRequest(f"Invalid model name {model!r}: {problem}.", param="model", code="invalid_value")


def _bare_not_found(name: str, res: Resolution, providers: dict[str, Provider]) -> str:
    pin = "name it as `<provider>/<model>`"
    if res.ambiguous:
        listed = ", ".join(f"{p}/{m}" for p, m in res.targets)
        pids = ", ".join(p for p, _ in res.targets)
        return (f"The model {name!r} is served by several configured providers: {listed}. Pin one by "
                f"naming it as `<provider>/<model>`, or order them in the config: "
                f"`routing: {{bare_names: {{{name!r}: [{pids}]}}}}`.")
    why = []
    if res.unconfigured:
        envs = [" or ".join(key_env_names(PRESETS[p])) for p in res.unconfigured if p in PRESETS]
        why.append(f"it is served by {', '.join(res.unconfigured)}, not configured here"
                   + (f" (set {'; '.join(envs)})" if envs else ""))
    if res.unmapped:
        why.append(f"{', '.join(res.unmapped)} has no catalog entry for it (name its own model id, "
                   f"e.g. `{res.unmapped[0]}/<model id>`)")
    configured = ", ".join(sorted(providers)) or "none"
    reason = f": {'; '.join(why)}" if why else " on this gateway"
    return (f"The model {name!r} does not exist or is not configured{reason}. Configured providers: "
            f"{configured}; {pin} with one of them, or map bare names to providers in "
            "`routing.bare_names`.")


class _Ordered(Strategy):
    """The given order (a bare name's providers, in the order its rule names them)."""

    name = "ordered"

    def _order_tier(self, out: list[Candidate[T]], start: int, group: Group[T], tier: int,
                    facts: RequestFacts) -> None:
        return None


def _fill_prices(cands: list[Candidate[Deployment]]) -> None:
    """lowest-cost needs prices: the catalog's where the config gives none."""
    from unigate import catalog

    for c in cands:
        if c.input_price is None and c.output_price is None:
            info = catalog.lookup(c.target.provider.preset.id, c.target.model)
            if info is not None:
                c.input_price, c.output_price = info.input_price, info.output_price


def _not_found_message(name: str, providers: dict[str, Provider], local_models: list[str]) -> str:
    pid, sep, _ = name.partition("/")
    if pid == "local" and local_models:
        return (f"The model {name!r} does not exist: the local models are {', '.join(sorted(local_models))} "
                "(a configured GGUF whose file is missing is left out; the start-up log names it)")
    if sep and pid and pid not in providers:
        from unigate.providers.presets import PRESETS
        from unigate.providers.registry import key_env_names

        if pid == "local":
            return (
                f"The model {name!r} does not exist: the embedded local model is not available "
                "(install it with `pip install 'unigate[local]'`, and do not set UNIGATE_LOCAL=off)"
            )
        if pid in PRESETS:
            envs = " or ".join(key_env_names(PRESETS[pid]))
            return f"The model {name!r} does not exist: provider {pid!r} is not configured (set {envs})"
    return f"The model {name!r} does not exist or is not configured on this gateway"
