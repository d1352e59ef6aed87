"""Model name -> the ordered deployments to try.

A name is, in order of precedence: an alias from the config (a list of targets), the public
name of one or more configured deployments, or a direct `provider/model` id for a configured
provider. Several deployments under one name are balanced by weight; the rest follow as
fallbacks.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from unigate.config import Config, model_name_problem
from unigate.errors import InvalidRequest, ModelNotFound
from unigate.providers.base import Deployment, Provider
from unigate.providers.registry import adapter_for


class Router:
    def __init__(self, cfg: Config, providers: dict[str, Provider], extra: Iterable[Deployment] = ()) -> None:
        self.providers = providers
        self._direct: dict[str, Deployment] = {}
        self._groups: dict[str, list[Deployment]] = {}
        for d in extra:
            self._direct[d.public_id] = d
        for i, dc in enumerate(cfg.deployments):
            pid, _, model = dc.model.partition("/")
            prov = providers.get(pid)
            if prov is None:
                # A deployment on a provider with no credentials is left out, not fatal: the
                # same config serves environments where only some providers are set up.
                continue
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
            self._groups.setdefault(dc.name, []).append(dep)
        self._aliases = dict(cfg.aliases)
        self._resolved: dict[str, tuple[list[Deployment], bool]] = {}

    def names(self) -> list[str]:
        return sorted({*self._groups, *self._aliases})

    def direct_deployments(self) -> list[Deployment]:
        return list(self._direct.values())

    def resolve(self, name: str) -> list[Deployment]:
        """The deployments to try for `name`, first choice first. Raises ModelNotFound."""
        hit = self._resolved.get(name)
        if hit is None:
            # a group of deployments under one name is balanced; an alias is an ordered list
            hit = (self._lookup(name, depth=0), name in self._groups and name not in self._aliases)
            if len(self._resolved) < 10_000:
                self._resolved[name] = hit
        deps, balanced = hit
        return _weighted_order(deps) if balanced and len(deps) > 1 else deps

    def _lookup(self, name: str, depth: int) -> list[Deployment]:
        if depth > 5:
            raise ModelNotFound(f"alias {name!r} nests too deeply", param="model")
        if name in self._aliases:
            out: list[Deployment] = []
            for t in self._aliases[name]:
                out.extend(d for d in self._lookup(t, depth + 1) if d not in out)
            return out
        if name in self._groups:
            return list(self._groups[name])
        if name in self._direct:
            return [self._direct[name]]
        pid, sep, model = name.partition("/")
        prov = self.providers.get(pid) if sep else None
        if prov is not None and model:
            check_model_name(model)
            dep = Deployment(
                id=name, provider=prov, model=model, adapter=adapter_for(prov.preset.dialect), timeouts=prov.timeouts
            )
            return [dep]
        local = [d.public_id for d in self._direct.values() if d.provider.id == "local"]
        raise ModelNotFound(_not_found_message(name, self.providers, local), param="model")


def check_model_name(model: str) -> None:
    """Refused here, once, for every dialect; adapters still percent-encode what they put in a path."""
    problem = model_name_problem(model)
    if problem:
        raise InvalidRequest(f"Invalid model name {model!r}: {problem}.", param="model", code="invalid_value")


def _weighted_order(deps: list[Deployment]) -> list[Deployment]:
    first = random.choices(deps, weights=[d.weight for d in deps])[0]
    return [first, *(d for d in deps if d is not first)]


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
