"""The transport of the principal's API channel (ZeroMQ DEALER speaking ``cdktr/1``), with
the moves between several principals; :class:`cdktr.Principal` adds the typed methods.

Wire format (see docs/protocol.md): a request is the multipart message
``[b"cdktr/1", request_id, deadline_ms, verb, json_body]`` and the reply
``[b"cdktr/1", request_id, b"ok" | b"error", json_body]``; an error body is
``{"code", "message", "retryable"}`` (plus ``leader`` on ``NOT_LEADER``). With a key (section
2.1) the socket speaks CURVE to the pinned principal key and the connection is bound to the key
by ``hello`` before its first request.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence

import zmq

from .endpoints import LeaderFollower, default_host, default_port, env_endpoints
from .errors import CdktrError
from .keys import OPERATOR_KEY_NAME, ClientKey, KeyLike, resolve_key

PROTOCOL = b"cdktr/1"

#: Verbs that may be sent again after a timeout (same table as API_VERBS in @cdktr/protocol).
IDEMPOTENT_VERBS = frozenset(
    {
        "ping",
        "listWorkflows",
        "getWorkflow",
        "runWorkflow",
        "runWorkflows",
        "cancelRun",
        "getRun",
        "listRuns",
        "queryLogs",
        "listAgents",
        "hello",
    }
)

#: Run states a run never leaves.


class Channel:
    """One request at a time to the principal that leads (see :class:`cdktr.Principal` for the
    arguments and the behaviour)."""

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        timeout_ms: int = 5000,
        retries: int = 1,
        context: Optional[zmq.Context] = None,
        key: KeyLike = None,
        key_name: str = OPERATOR_KEY_NAME,
        endpoints: Optional[Sequence[str]] = None,
        leader_wait_ms: int = 20000,
    ) -> None:
        #: The key of this client's connection, or None (plaintext).
        self.client_key: Optional[ClientKey] = resolve_key(key, key_name)
        self.host = host if host is not None else default_host()
        if self.host in ("0.0.0.0", "localhost", ""):
            # "0.0.0.0" was the original stub's default; it is a bind address, not a peer.
            self.host = "127.0.0.1"
        self.port = int(port) if port is not None else default_port()
        listed = list(endpoints) if endpoints else (env_endpoints() if host is None and port is None else None)
        self._follower = LeaderFollower(listed or [f"tcp://{self.host}:{self.port}"])
        self.leader_wait_ms = int(leader_wait_ms)
        self.timeout_ms = int(timeout_ms)
        self.retries = max(0, int(retries))
        self._ctx = context if context is not None else zmq.Context.instance()
        self._sock: Optional[zmq.Socket] = None
        self._sock_endpoint: Optional[str] = None
        self._lock = threading.Lock()
        self._closed = False
        self._identity: Optional[Dict[str, Any]] = None
        self._answered_by: Optional[str] = None
        k = self.client_key
        self._hint = (
            "is the principal running? (`cdktr start principal`); a principal with authentication on "
            "answers only clients with a key (CDKTR_KEY_FILE)"
            if k is None
            else f"is the principal running, and is key `{k.name}` enrolled there with this principal's "
            "public key pinned? (a principal answers nothing to a key it does not know)"
        )

    @property
    def endpoint(self) -> str:
        """The API endpoint requests go to now (the leader's, once known)."""
        return self._follower.current

    @property
    def endpoints(self) -> List[str]:
        """Every API endpoint known: the configured ones, then the leaders learned since."""
        return list(self._follower.endpoints)

    @property
    def last_endpoint(self) -> Optional[str]:
        """The API endpoint that answered the last successful request (a standby answers reads;
        :attr:`endpoint` may have moved on to the leader it named); None before the first."""
        return self._answered_by

    @property
    def leader(self) -> Optional[Dict[str, str]]:
        """The leader's ``{api, logs, publish}`` as last heard of; None while unknown or electing."""
        return self._follower.leader

    @property
    def identity(self) -> Optional[Dict[str, Any]]:
        """What ``hello`` proved (``name``, ``role``, ``scope``, ``workflows``, ``publicKey``);
        None before the first request, and without a key."""
        return self._identity

    # -- transport --------------------------------------------------------------------------

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            # Queue nothing for an absent principal: a request sent while it is down must not run later.
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.ROUTING_ID, f"py-{uuid.uuid4().hex}".encode())
            if self.client_key is not None:
                self.client_key.curve(sock)
            sock.connect(self.endpoint)
            self._sock = sock
            self._sock_endpoint = self.endpoint
            self._identity = None  # a new connection: prove the key again
        return self._sock

    def close(self) -> None:
        """Close the socket. Further calls fail with ``CLOSED``."""
        with self._lock:
            self._closed = True
            if self._sock is not None:
                self._sock.close(linger=0)
                self._sock = None

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; never raise from a finaliser
        try:
            if self._sock is not None:
                self._sock.close(linger=0)
        except Exception:
            pass

    def _attempt(self, verb: str, body: Dict[str, Any], timeout_ms: int) -> Any:
        sock = self._socket()
        request_id = uuid.uuid4().hex
        deadline = time.time() + timeout_ms / 1000.0
        deadline_ms = int(deadline * 1000)
        frames = [
            PROTOCOL,
            request_id.encode(),
            str(deadline_ms).encode(),
            verb.encode(),
            json.dumps(body, separators=(",", ":")).encode(),
        ]
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLOUT)
        if not poller.poll(max(0, int(timeout_ms))):
            # No connection at all: no principal, or one that refused our key in the handshake.
            raise CdktrError(
                "TIMEOUT",
                f"could not reach {self.endpoint} within {timeout_ms} ms to send {verb}: {self._hint}",
                unsent=True,
            )
        sock.send_multipart(frames, flags=zmq.NOBLOCK)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while True:
            remaining = int((deadline - time.time()) * 1000)
            if remaining <= 0 or not poller.poll(remaining):
                raise CdktrError(
                    "TIMEOUT",
                    f"no reply from {self.endpoint} within {timeout_ms} ms to {verb}: {self._hint}",
                )
            reply = sock.recv_multipart()
            if len(reply) != 4 or reply[1].decode(errors="replace") != request_id:
                continue  # a late reply to an earlier, timed-out request: discard it
            if reply[0] != PROTOCOL:
                raise CdktrError(
                    "PROTOCOL_MISMATCH",
                    f"the principal at {self.endpoint} speaks {reply[0]!r}, this client {PROTOCOL!r}",
                )
            try:
                payload = json.loads(reply[3])
            except ValueError as e:
                raise CdktrError("INTERNAL", f"the principal sent a reply that is not JSON: {e}") from None
            status = reply[2]
            if status == b"ok":
                return payload
            if status == b"error" and isinstance(payload, dict):
                leader = payload.get("leader")
                raise CdktrError(
                    str(payload.get("code", "INTERNAL")),
                    str(payload.get("message", "unknown error")),
                    payload.get("retryable"),
                    leader=leader if isinstance(leader, dict) else None,
                )
            raise CdktrError("INTERNAL", f"the principal sent an unknown reply status {status!r}")

    def _hello(self, timeout_ms: int) -> Dict[str, Any]:
        """Bind this connection to the key: ``hello`` returns a challenge, the second ``hello``
        carries an HMAC of it under the X25519 secret shared with the principal."""
        key = self.client_key
        if key is None:
            raise CdktrError("INTERNAL", "hello without a key", False)
        first = self._attempt("hello", {"publicKey": key.public_key}, timeout_ms)
        challenge = first.get("challenge") if isinstance(first, dict) else None
        if not isinstance(challenge, str):
            raise CdktrError(
                "UNAUTHENTICATED",
                f"{self.endpoint} runs without authentication (CDKTR_AUTH=off) but this client has key "
                f"`{key.name}`: set CDKTR_AUTH=off here too",
                False,
            )
        second = self._attempt(
            "hello",
            {"publicKey": key.public_key, "challenge": challenge, "proof": key.hello_proof(challenge)},
            timeout_ms,
        )
        identity = second.get("identity") if isinstance(second, dict) else None
        if not isinstance(identity, dict):
            raise CdktrError("UNAUTHENTICATED", f"{self.endpoint} did not confirm key `{key.name}`", False)
        self._identity = identity
        return identity

    def _proven_attempt(self, verb: str, body: Dict[str, Any], timeout_ms: int) -> Any:
        """One attempt, after ``hello`` when the connection has not proven its key yet."""
        if self.client_key is not None and verb != "hello" and self._identity is None:
            self._hello(timeout_ms)
        return self._attempt(verb, body, timeout_ms)

    def request(
        self,
        verb: str,
        body: Optional[Dict[str, Any]] = None,
        timeout_ms: Optional[int] = None,
        retry: bool = True,
    ) -> Any:
        """Send one request and return the reply body.

        Raises:
            CdktrError: the principal's error (its code: ``PERMISSION_DENIED`` when the key's role
                may not call ``verb``, ``UNAUTHENTICATED`` when the key was revoked...), or
                TIMEOUT / UNAVAILABLE / CLOSED.
        """
        body = {} if body is None else body
        timeout = self.timeout_ms if timeout_ms is None else int(timeout_ms)
        # A trigger without its idempotency key could run twice if resent after silence.
        unkeyed_run = (verb == "runWorkflow" and "idempotencyKey" not in body) or (
            verb == "runWorkflows" and any("idempotencyKey" not in i for i in body.get("items", []))
        )
        resendable = retry and verb in IDEMPOTENT_VERBS and not unkeyed_run
        with self._lock:
            if self._closed:
                raise CdktrError("CLOSED", "this Principal client was closed; create a new one")
            end = time.time() + self.leader_wait_ms / 1000.0
            hop = 0
            while True:
                hop += 1
                endpoint = self._follower.current
                try:
                    reply = self._request_here(verb, body, timeout, retry)
                    self._answered_by = endpoint
                    self._follower.learn(verb, reply, endpoint)
                    self._use(self._follower.current)
                    return reply
                except CdktrError as e:
                    wait = self._follower.after_failure(e, endpoint, resendable, hop)
                    if wait is None or self._closed or time.time() + wait >= end:
                        raise
                    self._use(self._follower.current)
                    time.sleep(wait)

    def _use(self, endpoint: str) -> None:
        """Talk to ``endpoint`` from now on (a new socket: the key is proven again there)."""
        if self._sock is not None and self._sock_endpoint != endpoint:
            self._sock.close(linger=0)
            self._sock = None
            # the key was proven on the old connection only: the next request says hello first
            self._identity = None

    def _request_here(self, verb: str, body: Dict[str, Any], timeout: int, retry: bool) -> Any:
        """The request at the current endpoint, with its retries (``NOT_LEADER``, and silence
        with several principals, are the caller's to handle)."""
        attempts = 1 + (self.retries if retry and verb in IDEMPOTENT_VERBS else 0)
        rehello = self.client_key is not None and verb != "hello"
        for attempt in range(1, attempts + 1):
            try:
                try:
                    return self._proven_attempt(verb, body, timeout)
                except CdktrError as e:
                    # A proven connection the principal no longer knows (it restarted): prove
                    # the key again and resend, once per request, without counting an attempt.
                    if not (rehello and e.code == "UNAUTHENTICATED" and self._identity is not None):
                        raise
                rehello = False
                self._identity = None
                return self._proven_attempt(verb, body, timeout)
            except CdktrError as e:
                moves = e.code == "NOT_LEADER" or (self._follower.several and e.code in ("TIMEOUT", "UNAVAILABLE"))
                if attempt >= attempts or not e.retryable or moves:
                    raise
                time.sleep(min(2.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
            except zmq.ZMQError as e:
                raise CdktrError("UNAVAILABLE", f"ZeroMQ error talking to {self.endpoint}: {e}") from None
        raise CdktrError("INTERNAL", "unreachable")  # pragma: no cover

