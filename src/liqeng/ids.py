"""Namespaced identifiers: ``<namespace>/<name>``.

Accounts, assets, instruments and markets of different protocols will one day share one
liquidation layer, so no id is a bare int: every id carries the namespace (protocol or
chain) it belongs to, e.g. ``AccountId("quickstart/acct-0007")``, ``AssetId("eth/USDC")``,
``InstrumentId("quickstart/ETH-PERP")``. Ids are plain ``str`` at run time (fast dict keys);
the constructors validate the shape once, at the boundary.
"""

from __future__ import annotations

import re
from typing import NewType

from liqeng.errors import InvalidArgument

__all__ = [
    "AccountId",
    "AssetId",
    "InstrumentId",
    "TxId",
    "account_id",
    "asset_id",
    "check_id",
    "instrument_id",
    "tx_id",
]

AccountId = NewType("AccountId", str)
AssetId = NewType("AssetId", str)
InstrumentId = NewType("InstrumentId", str)
TxId = NewType("TxId", str)

_ID = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,62}/[A-Za-z0-9][A-Za-z0-9_.:\-]{0,126}")
_TX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,190}")

_SEEN_MAX = 65_536
_seen_ids: set[str] = set()
"""Exact ``str`` values that already matched ``_ID``: the same few account and instrument
ids are checked again and again (every posting, position change and margin call), and a
set lookup is much cheaper than the regex. Only plain ``str`` (``type(v) is str``) enters,
so a subclass cannot smuggle in another hash or equality; emptied when it gets large."""


def check_id(kind: str, value: object) -> str:
    """Return ``value`` if it is a namespaced id ``ns/name``; raise naming it otherwise."""
    if type(value) is str and value in _seen_ids:
        return value
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise InvalidArgument(
            f"{kind}={value!r} must be '<namespace>/<name>' "
            "(namespace: lowercase letters, digits, '_.-'; name: letters, digits, '_.:-')"
        )
    if type(value) is str:
        if len(_seen_ids) >= _SEEN_MAX:
            _seen_ids.clear()
        _seen_ids.add(value)
    return value


def account_id(value: str) -> AccountId:
    return AccountId(check_id("account", value))


def asset_id(value: str) -> AssetId:
    return AssetId(check_id("asset", value))


def instrument_id(value: str) -> InstrumentId:
    return InstrumentId(check_id("instrument", value))


def tx_id(value: str) -> TxId:
    """A transaction id chosen by the caller; reusing it is how retries stay idempotent."""
    if not isinstance(value, str) or _TX.fullmatch(value) is None:
        raise InvalidArgument(f"tx_id={value!r} must be 1-191 characters of [A-Za-z0-9_.:/-]")
    return TxId(value)
