"""The receiving side of the principal's publish channel (docs/protocol.md section 6)."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional, Tuple

import zmq

from .errors import CdktrError
from .keys import OPERATOR_KEY_NAME, ClientKey, KeyLike, resolve_key


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
    ) -> None:
        #: The key of this subscriber's connection, or None (plaintext).
        self.client_key: Optional[ClientKey] = resolve_key(key, key_name)
        host = host if host is not None else (os.environ.get("CDKTR_PRINCIPAL_HOST") or "127.0.0.1")
        if host in ("0.0.0.0", "localhost", ""):
            host = "127.0.0.1"
        self.endpoint = f"tcp://{host}:{int(port) if port is not None else _default_publish_port()}"
        ctx = context if context is not None else zmq.Context.instance()
        self._sock: Optional[zmq.Socket] = ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        if self.client_key is not None:
            self.client_key.curve(self._sock)
        self._sock.connect(self.endpoint)

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
            if deadline is not None:
                left = int((deadline - time.monotonic()) * 1000)
                if left < 0 or not sock.poll(left):
                    return None
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
