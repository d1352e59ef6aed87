"""The audit row as SQL, shared by the stores that write one in the same transaction as the
change it records (keys and teams in sql_keys, credit top-ups in sql_spend)."""

from __future__ import annotations

from typing import Any

from unigate.state.db import Sql
from unigate.state.fields import dump_json


def audit_insert(now: float, actor: str, action: str, target: str, details: dict[str, Any]) -> Sql:
    return Sql(
        "INSERT INTO audit (time, actor, action, target, details) VALUES (?, ?, ?, ?, ?)",
        (now, actor, action, target, dump_json(details)),
    )
