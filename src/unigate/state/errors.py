"""Errors the stores raise for admin operations (the hot path answers with values instead)."""

from __future__ import annotations


class StateError(Exception):
    pass


class NotFound(StateError, LookupError):
    pass


class Invalid(StateError, ValueError):
    pass
