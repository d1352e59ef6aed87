"""What a virtual key's calls must respect, worked out once per key load (the key cache's fill)
rather than per request: the rate-limited scopes and the paying or capped accounts of the key
and of its team. A key with no limit anywhere has no terms, and its calls skip enforcement."""

from __future__ import annotations

from dataclasses import dataclass

from unigate.state.limit_types import Scope
from unigate.state.records import Key, Team
from unigate.state.spend_types import Account


@dataclass(frozen=True, slots=True)
class Terms:
    #: scopes with rpm or tpm (the key's, then its team's): counted in blocks per worker
    rated: tuple[Scope, ...]
    #: scopes with max_parallel: a slot per call, held in the store
    parallel: tuple[Scope, ...]
    #: accounts with a budget or paying with credits; a call's worst case is reserved against all
    accounts: tuple[Account, ...]
    #: some scope has a tpm: the call's token estimate is worked out and counted
    counts_tokens: bool


def terms_of(key: Key, team: Team | None) -> Terms | None:
    rated: list[Scope] = []
    parallel: list[Scope] = []
    accounts: list[Account] = []
    parties: list[tuple[str, int | None, int | None, int | None, float | None, str, bool]] = [
        (key.account, key.rpm, key.tpm, key.max_parallel, key.budget_usd, key.budget_period, key.uses_credits)
    ]
    if team is not None:
        # a call is paid once: from the key's own credits when it has them, else from the team's
        parties.append((team.account, team.rpm, team.tpm, team.max_parallel, team.budget_usd,
                        team.budget_period, team.uses_credits and not key.uses_credits))
    for pid, rpm, tpm, mp, budget, period, credits in parties:
        if rpm is not None or tpm is not None:
            rated.append(Scope(pid, rpm=rpm, tpm=tpm))
        if mp is not None:
            parallel.append(Scope(pid, max_parallel=mp))
        if budget is not None or credits:
            accounts.append(Account(pid, budget_usd=budget, budget_period=period, uses_credits=credits))  # type: ignore[arg-type]
    if not (rated or parallel or accounts):
        return None
    return Terms(tuple(rated), tuple(parallel), tuple(accounts), any(s.tpm is not None for s in rated))
