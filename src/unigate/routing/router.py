"""Model name -> the ordered deployments to try.

A name is, in order of precedence: an alias from the config (a list of targets), the public
name of one or more configured deployments, a direct `provider/model` id for a configured
provider, or a bare vendor name (`claude-sonnet-4-5`, `gpt-4.1-mini`) resolved to the providers
that serve it (bare.py). Several deployments under one name are balanced by weight; the rest
follow as fallbacks.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from unigate.config import Config, model_name_problem
from unigate.errors import InvalidRequest, ModelNotFound
from unigate.providers.base import Deployment, Provider
from unigate.providers.presets import PRESETS
from unigate.providers.registry import adapter_for, key_env_names
from unigate.routing.bare import BareNames, Resolution, bedrock_vendor_names, strip_client_suffix


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
        self.bare = BareNames(cfg.routing.bare_names, providers,
                              [d.model for d in self._direct.values() if d.provider.id == "local"])
        self._resolved: dict[str, tuple[list[Deployment], bool]] = {}

    def names(self) -> list[str]:
        return sorted({*self._groups, *self._aliases})

    def direct_deployments(self) -> list[Deployment]:
        return list(self._direct.values())

    def resolve(self, name: str) -> list[Deployment]:
        """The deployments to try for `name`, first choice first. Raises ModelNotFound."""
        hit = self._resolved.get(name)
        if hit is None:
            if name.endswith("]"):
                # Claude Code's `[1m]` context selector is the client's, not part of the model id
                name = strip_client_suffix(name) or name
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
            if name in self._groups or name in self._aliases or name.partition("/")[0] in PRESETS:
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
