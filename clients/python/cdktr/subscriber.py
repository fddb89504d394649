"""The receiving side of the principal's publish channel (docs/protocol.md section 6)."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Optional, Tuple

import zmq

from .errors import CdktrError
from .keys import OPERATOR_KEY_NAME, ClientKey, KeyLike, resolve_key

if TYPE_CHECKING:  # pragma: no cover
    from .principal import Principal

#: Least time between two looks at the leader while following one (seconds).
_FOLLOW_EVERY_S = 1.0


def _default_publish_port() -> int:
    raw = os.environ.get("CDKTR_LOGS_PUBLISHING_PORT")
    if raw is None or raw == "":
        return 5563
    try:
        return int(raw)
    except ValueError:
        raise ValueError(
            f"CDKTR_LOGS_PUBLISHING_PORT: expected an integer from 1 to 65535, got {raw!r}"
        ) from None


class Subscriber:
    """Live events of the principal (a ZeroMQ SUB socket on its publish port).

    Subscribe with topic prefixes (``runs|etl.daily|``: every run event of ``etl.daily``;
    ``logs|etl.daily|<runId>|``: the log lines of one run), then call :meth:`receive`. With a key
    the socket speaks CURVE to the pinned principal key and every subscription is proven with the
    key (docs/protocol.md section 6); the principal delivers only what the key's role may receive
    (docs/security.md: a trigger key gets ``workflows|`` and the topics of the runs it triggered,
    named down to the run id) and silently ignores other subscriptions. Delivery is best effort:
    subscribe before triggering, and ask ``Principal.get_run`` when nothing comes.

    Args:
        host: principal host. Default: ``CDKTR_PRINCIPAL_HOST`` or ``127.0.0.1``.
        port: publish port. Default: ``CDKTR_LOGS_PUBLISHING_PORT`` or ``5563``.
        key, key_name: the client key, found as :class:`~cdktr.Principal` finds it.
        context: the pyzmq context. Default: the shared instance.
        follow: a :class:`~cdktr.Principal` of several principals: the subscriber connects to
            the publish endpoint of the leader that client knows (it pings to learn it), and
            while :meth:`receive` waits it checks at most once a second whether the leader moved,
            and if so moves its subscriptions there (messages published in between are lost:
            read them from the store). Overrides ``host`` and ``port``.

    Raises:
        KeyFileError: the key file cannot be used.
    """

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        key: KeyLike = None,
        key_name: str = OPERATOR_KEY_NAME,
        context: Optional[zmq.Context] = None,
        follow: Optional["Principal"] = None,
    ) -> None:
        #: The key of this subscriber's connection, or None (plaintext).
        self.client_key: Optional[ClientKey] = resolve_key(key, key_name)
        self._follow = follow
        self._looked_at = 0.0
        host = host if host is not None else (os.environ.get("CDKTR_PRINCIPAL_HOST") or "127.0.0.1")
        if host in ("0.0.0.0", "localhost", ""):
            host = "127.0.0.1"
        #: The publish endpoint the socket is connected to.
        self.endpoint = f"tcp://{host}:{int(port) if port is not None else _default_publish_port()}"
        if follow is not None:
            self.endpoint = self._leader_publish() or self.endpoint
        ctx = context if context is not None else zmq.Context.instance()
        self._sock: Optional[zmq.Socket] = ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        if self.client_key is not None:
            self.client_key.curve(self._sock)
        self._sock.connect(self.endpoint)

    def _leader_publish(self) -> Optional[str]:
        """The publish endpoint of the leader the followed client knows (asking with a ping
        while it knows none), or None."""
        p = self._follow
        if p is None:
            return None
        self._looked_at = time.monotonic()
        if p.leader is None:
            p.ping()
        leader = p.leader
        publish = leader.get("publish") if isinstance(leader, dict) else None
        return publish if isinstance(publish, str) and publish != "" else None

    def move_to(self, endpoint: str) -> None:
        """Receive from the publisher at ``endpoint`` instead (the subscriptions move along)."""
        sock = self._socket()
        if endpoint == self.endpoint:
            return
        sock.disconnect(self.endpoint)
        sock.connect(endpoint)
        self.endpoint = endpoint

    def _follow_leader(self) -> None:
        if self._follow is None or time.monotonic() - self._looked_at < _FOLLOW_EVERY_S:
            return
        # The followed client learns of a move from its own calls; a ping asks when in doubt.
        self._follow.ping()
        publish = self._leader_publish()
        if publish is not None:
            self.move_to(publish)

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            raise CdktrError("CLOSED", "this Subscriber was closed; create a new one")
        return self._sock

    def subscribe(self, *topics: str) -> None:
        """Receive the messages whose topic starts with one of ``topics`` (none: everything,
        which only operator and reader keys may receive). ZeroMQ repeats the subscriptions after
        a reconnect, and the principal checks them again."""
        sock = self._socket()
        for topic in topics or ("",):
            if self.client_key is not None:
                sock.setsockopt(zmq.SUBSCRIBE, self.client_key.subscription(topic))
            sock.setsockopt(zmq.SUBSCRIBE, topic.encode())

    def unsubscribe(self, *topics: str) -> None:
        """Stop receiving ``topics`` (as given to :meth:`subscribe`)."""
        sock = self._socket()
        for topic in topics or ("",):
            if self.client_key is not None:
                sock.setsockopt(zmq.UNSUBSCRIBE, self.client_key.subscription(topic))
            sock.setsockopt(zmq.UNSUBSCRIBE, topic.encode())

    def receive(self, timeout_ms: Optional[int] = None) -> Optional[Tuple[str, Any]]:
        """The next message as ``(topic, body)`` (the body parsed from JSON), or None when none
        came within ``timeout_ms`` (None: wait as long as it takes). Malformed messages are
        skipped."""
        sock = self._socket()
        deadline = None if timeout_ms is None else time.monotonic() + max(0, int(timeout_ms)) / 1000.0
        while True:
            self._follow_leader()
            wait = None if deadline is None else int((deadline - time.monotonic()) * 1000)
            if wait is not None and wait < 0:
                return None
            if self._follow is not None:
                # Wake up at least once a second to look at the leader.
                step = int(_FOLLOW_EVERY_S * 1000)
                wait = step if wait is None else min(wait, step)
            if wait is not None and not sock.poll(wait):
                continue
            frames = sock.recv_multipart()
            if len(frames) != 2:
                continue
            try:
                return frames[0].decode(), json.loads(frames[1])
            except ValueError:
                continue

    def close(self) -> None:
        """Close the socket. Idempotent."""
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; never raise from a finaliser
        try:
            self.close()
        except Exception:
            pass
