"""The master key: the whole `Authorization: Bearer <key>` header settles most requests in one
compare; every other spelling still goes through the full parse."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from unigate.errors import Unauthenticated
from unigate.governance.auth import MASTER, Authenticator


def h(**kw: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in kw.items()}))


@pytest.mark.parametrize("headers", [
    h(Authorization="Bearer sk-master"),
    h(authorization="bearer sk-master"),  # scheme in any case
    h(Authorization="Bearer  sk-master "),  # padded
    h(x_api_key="sk-master"),
    h(api_key="sk-master"),
])
async def test_master_key_in_every_accepted_form(headers: CIMultiDictProxy[str]) -> None:
    assert await Authenticator("sk-master").authenticate(headers) is MASTER


@pytest.mark.parametrize("headers, code", [
    (h(Authorization="Bearer sk-other"), "invalid_api_key"),
    (h(Authorization="Bearer sk-master2"), "invalid_api_key"),
    (h(Authorization="Bearer sk-m\udcc3ster"), "invalid_api_key"),  # undecodable bytes, as aiohttp passes them
    (h(Authorization="Basic abc"), "missing_api_key"),
    (h(), "missing_api_key"),
])
async def test_wrong_or_missing_key_is_refused(headers: CIMultiDictProxy[str], code: str) -> None:
    with pytest.raises(Unauthenticated) as e:
        await Authenticator("sk-master").authenticate(headers)
    assert e.value.code == code
