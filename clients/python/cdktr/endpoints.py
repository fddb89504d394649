"""Where the principal is: one endpoint, or several principals sharing one database.

``CDKTR_PRINCIPAL_ENDPOINTS=host1:5561,host2:5561`` lists the API endpoints of several principals;
one leads, the others (standbys) answer reads and refuse writes with ``NOT_LEADER``, naming the
leader when they know it. :class:`LeaderFollower` holds the list, the current endpoint and what
is known of the leader, and decides where a request goes after a failure (see docs/protocol.md,
"Several principals").
"""

from __future__ import annotations

import os
import random
import re
from typing import Any, Dict, List, Optional, Sequence

from .errors import CdktrError

#: Most endpoints in ``CDKTR_PRINCIPAL_ENDPOINTS`` (as the TypeScript clients).
MAX_PRINCIPAL_ENDPOINTS = 16

_ITEM = re.compile(r"^(?:tcp://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+|\*):(\d{1,5})$")


def parse_endpoints(raw: str) -> List[str]:
    """``host1:5561,tcp://host2:5561,[::1]:5561`` as ``tcp://host:port`` items, deduplicated.

    Raises:
        ValueError: an item is not ``host:port``, or there are none or more than 16.
    """
    out: List[str] = []
    for item in (x.strip() for x in raw.split(",")):
        if item == "":
            continue
        m = _ITEM.match(item)
        port = int(m.group(2)) if m else 0
        if m is None or not 1 <= port <= 65535:
            raise ValueError(
                f"CDKTR_PRINCIPAL_ENDPOINTS: expected host:port items separated by commas ({item!r} is not one)"
            )
        e = f"tcp://{m.group(1)}:{port}"
        if e not in out:
            out.append(e)
    if not 1 <= len(out) <= MAX_PRINCIPAL_ENDPOINTS:
        raise ValueError(f"CDKTR_PRINCIPAL_ENDPOINTS: expected 1 to {MAX_PRINCIPAL_ENDPOINTS} host:port items")
    return out


def default_host() -> str:
    """``CDKTR_PRINCIPAL_HOST`` or ``127.0.0.1`` (a bind-everything address is reached on loopback)."""
    host = os.environ.get("CDKTR_PRINCIPAL_HOST") or "127.0.0.1"
    return "127.0.0.1" if host in ("0.0.0.0", "localhost", "") else host


def default_port() -> int:
    """``CDKTR_PRINCIPAL_PORT`` or 5561."""
    raw = os.environ.get("CDKTR_PRINCIPAL_PORT")
    if raw is None or raw == "":
        return 5561
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"CDKTR_PRINCIPAL_PORT: expected an integer from 1 to 65535, got {raw!r}") from None


def env_endpoints() -> Optional[List[str]]:
    """``CDKTR_PRINCIPAL_ENDPOINTS`` parsed, or None when unset."""
    raw = os.environ.get("CDKTR_PRINCIPAL_ENDPOINTS")
    return None if raw is None or raw.strip() == "" else parse_endpoints(raw)


def _backoff_s(n: int) -> float:
    """200 ms doubling to 2 s, half of it random (as the TypeScript clients)."""
    base = min(2.0, 0.2 * 2 ** max(0, n - 1))
    return base / 2 + random.random() * base / 2


class LeaderFollower:
    """The endpoints of one client, the current one, and the leader as last heard of.

    After a failure :meth:`after_failure` moves the current endpoint and says how long to wait
    before resending, or None to give up:

    - ``NOT_LEADER`` naming a leader: to the leader at once (the refused request was not
      executed, so resending any verb is safe);
    - ``NOT_LEADER`` without one (an election): a backoff, then the next endpoint;
    - silence (``TIMEOUT``, ``UNAVAILABLE``) with several endpoints: the next endpoint, resending
      only what may be resent (an idempotent verb, or a request known unsent).
    """

    def __init__(self, endpoints: Sequence[str]) -> None:
        self.endpoints: List[str] = list(dict.fromkeys(endpoints))
        #: Where requests go now.
        self.current: str = self.endpoints[0]
        #: The leader's ``{api, logs, publish}`` as last heard of; None while unknown or electing.
        self.leader: Optional[Dict[str, str]] = None

    @property
    def several(self) -> bool:
        """Whether other principals are known to move to on silence."""
        return len(self.endpoints) > 1

    def learn(self, verb: str, reply: Any, endpoint: str) -> None:
        """What a successful reply from ``endpoint`` says about the leader (``ping``,
        ``registerAgent``). A principal that leads is reached where it answered (its advertised
        API address may be a name this client does not use)."""
        if not isinstance(reply, dict) or verb not in ("ping", "registerAgent"):
            return
        leader = reply.get("leader")
        if verb == "ping" and reply.get("role") == "standby":
            self._set(leader if isinstance(leader, dict) else None)
        elif isinstance(leader, dict):
            self._set({**leader, "api": endpoint})

    def _set(self, leader: Optional[Dict[str, str]]) -> None:
        self.leader = leader
        api = leader.get("api") if leader is not None else None
        if isinstance(api, str) and api != "":
            if api not in self.endpoints:
                self.endpoints.append(api)
            self.current = api

    def _next(self, endpoint: str) -> None:
        if self.current == endpoint and self.several:
            self.current = self.endpoints[(self.endpoints.index(endpoint) + 1) % len(self.endpoints)]

    def after_failure(self, e: CdktrError, endpoint: str, resendable: bool, hop: int) -> Optional[float]:
        """Move after ``e`` from ``endpoint``; the seconds to wait before resending, or None."""
        rounds = (hop + len(self.endpoints) - 1) // len(self.endpoints)
        if e.code == "NOT_LEADER":
            leader = e.leader
            if leader is not None and leader.get("api") not in (None, "", endpoint):
                self._set(leader)
                return 0.0 if rounds <= 1 else _backoff_s(rounds)
            self.leader = None
            self._next(endpoint)
            return _backoff_s(hop)
        if e.code not in ("TIMEOUT", "UNAVAILABLE") or not self.several:
            return None
        self.leader = None
        self._next(endpoint)
        if not resendable and not e.unsent:
            return None
        return _backoff_s(rounds) if hop % len(self.endpoints) == 0 else 0.0
