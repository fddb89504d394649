"""A client of the cdktr principal's API channel (ZeroMQ DEALER speaking ``cdktr/1``).

Wire format (see docs/protocol.md): a request is the multipart message
``[b"cdktr/1", request_id, deadline_ms, verb, json_body]`` and the reply
``[b"cdktr/1", request_id, b"ok" | b"error", json_body]``; an error body is
``{"code", "message", "retryable"}``. With a key (section 2.1) the socket speaks CURVE to the
pinned principal key and the connection is bound to the key by ``hello`` before its first request.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Union

import zmq

from .errors import CdktrError
from .keys import OPERATOR_KEY_NAME, ClientKey, KeyLike, resolve_key
from .result import Result

PROTOCOL = b"cdktr/1"

#: Verbs that may be sent again after a timeout (same table as API_VERBS in @cdktr/protocol).
IDEMPOTENT_VERBS = frozenset(
    {
        "ping",
        "listWorkflows",
        "getWorkflow",
        "runWorkflow",
        "cancelRun",
        "getRun",
        "listRuns",
        "queryLogs",
        "listAgents",
        "hello",
    }
)

#: Run states a run never leaves.
TERMINAL_RUN_STATUSES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED", "SKIPPED"})

TimeLike = Union[str, int, float, datetime]


def iso_time(value: TimeLike) -> str:
    """An ISO-8601 UTC instant with milliseconds from a datetime, epoch milliseconds or a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    else:
        dt = datetime.fromtimestamp(float(value) / 1000.0, tz=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _default_host() -> str:
    return os.environ.get("CDKTR_PRINCIPAL_HOST") or "127.0.0.1"


def _default_port() -> int:
    raw = os.environ.get("CDKTR_PRINCIPAL_PORT")
    if raw is None or raw == "":
        return 5561
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"CDKTR_PRINCIPAL_PORT: expected an integer from 1 to 65535, got {raw!r}") from None



def _present(**fields: Any) -> Dict[str, Any]:
    """The request body: the given fields, without those left as None."""
    return {k: v for k, v in fields.items() if v is not None}


class Principal:
    """Client of one principal over a single persistent ZeroMQ DEALER socket.

    Args:
        host: principal host. Default: ``CDKTR_PRINCIPAL_HOST`` or ``127.0.0.1``
            (the environment is read, never written).
        port: API port. Default: ``CDKTR_PRINCIPAL_PORT`` or ``5561``.
        timeout_ms: how long one attempt waits for its reply. Default 5000.
        retries: extra attempts for idempotent verbs after TIMEOUT/UNAVAILABLE or a retryable
            error. Default 1. ``run_workflow`` reuses one idempotency key on every attempt, so a
            retry never starts a second run.
        key: the client key: a dict (a key file's JSON), the path of a key file, or a
            :class:`ClientKey`; ``False`` for plaintext. Default: the file named by
            ``CDKTR_KEY_FILE``, else ``<CDKTR_KEYS_DIR or ~/.cdktr/keys>/<key_name>.json`` when it
            exists, else plaintext; ``CDKTR_AUTH=off`` means plaintext.
        key_name: the local key looked for when ``key`` is not given. Default ``local-operator``.

    With a key the socket is CURVE-encrypted to the principal key the key file pins, and the
    client proves its key with ``hello`` before its first request (and once more when the
    principal answers ``UNAUTHENTICATED``, e.g. after it restarted). A principal answers nothing
    to a key it does not know: that is a ``TIMEOUT`` whose message names the key.

    Every typed method returns a :class:`Result` and never raises for principal or transport
    errors; :meth:`request` is the raw call and raises :class:`CdktrError`.
    The object is thread-safe (one request at a time on its socket). Close it with
    :meth:`close` or use it as a context manager.

    Raises:
        KeyFileError: the key file (given, named by ``CDKTR_KEY_FILE``, or the local one) cannot
            be used: missing, not a key, or readable by group or others (``chmod 600`` it).
    """

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        timeout_ms: int = 5000,
        retries: int = 1,
        context: Optional[zmq.Context] = None,
        key: KeyLike = None,
        key_name: str = OPERATOR_KEY_NAME,
    ) -> None:
        #: The key of this client's connection, or None (plaintext).
        self.client_key: Optional[ClientKey] = resolve_key(key, key_name)
        self.host = host if host is not None else _default_host()
        if self.host in ("0.0.0.0", "localhost", ""):
            # "0.0.0.0" was the original stub's default; it is a bind address, not a peer.
            self.host = "127.0.0.1"
        self.port = int(port) if port is not None else _default_port()
        self.endpoint = f"tcp://{self.host}:{self.port}"
        self.timeout_ms = int(timeout_ms)
        self.retries = max(0, int(retries))
        self._ctx = context if context is not None else zmq.Context.instance()
        self._sock: Optional[zmq.Socket] = None
        self._lock = threading.Lock()
        self._closed = False
        self._identity: Optional[Dict[str, Any]] = None
        k = self.client_key
        self._hint = (
            "is the principal running? (`cdktr start principal`); a principal with authentication on "
            "answers only clients with a key (CDKTR_KEY_FILE)"
            if k is None
            else f"is the principal running, and is key `{k.name}` enrolled there with this principal's "
            "public key pinned? (a principal answers nothing to a key it does not know)"
        )

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
            self._identity = None  # a new connection: prove the key again
        return self._sock

    def close(self) -> None:
        """Close the socket. Further calls fail with ``CLOSED``."""
        with self._lock:
            self._closed = True
            if self._sock is not None:
                self._sock.close(linger=0)
                self._sock = None

    def __enter__(self) -> "Principal":
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
                raise CdktrError(
                    str(payload.get("code", "INTERNAL")),
                    str(payload.get("message", "unknown error")),
                    payload.get("retryable"),
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
        attempts = 1 + (self.retries if retry and verb in IDEMPOTENT_VERBS else 0)
        with self._lock:
            if self._closed:
                raise CdktrError("CLOSED", "this Principal client was closed; create a new one")
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
                    if attempt >= attempts or not e.retryable:
                        raise
                    time.sleep(min(2.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
                except zmq.ZMQError as e:
                    raise CdktrError("UNAVAILABLE", f"ZeroMQ error talking to {self.endpoint}: {e}") from None
        raise CdktrError("INTERNAL", "unreachable")  # pragma: no cover

    def _call(self, verb: str, body: Optional[Dict[str, Any]] = None, **kw: Any) -> Result:
        try:
            return Result.ok(self.request(verb, body, **kw))
        except CdktrError as e:
            return Result.failed(e)

    # -- typed methods ------------------------------------------------------------------------

    def ping(self) -> Result:
        """Check the principal answers. payload: ``{principalId, version, time}``."""
        return self._call("ping")

    def list_workflows(self, since_version: Optional[int] = None) -> Result:
        """Every workflow definition. payload: ``{version, full, workflows, removed, errors}``."""
        body: Dict[str, Any] = {}
        if since_version is not None:
            body["sinceVersion"] = since_version
        return self._call("listWorkflows", body)

    def get_workflow(self, workflow_id: str) -> Result:
        """One workflow definition. payload: ``{workflow}``."""
        return self._call("getWorkflow", {"workflowId": workflow_id})

    def run_workflow(
        self,
        workflow_id: str,
        params: Optional[Dict[str, Union[str, int, float, bool]]] = None,
        idempotency_key: Optional[str] = None,
        source: str = "python",
    ) -> Result:
        """Queue a run. ``result.run_id`` is its id; payload ``{runId, duplicate, skipped, status}``.

        The same ``idempotency_key`` always names the same run (``result.duplicate`` is then
        True); without one a key is generated and reused on retries.
        """
        body: Dict[str, Any] = {
            "workflowId": workflow_id,
            "idempotencyKey": idempotency_key or f"auto:{uuid.uuid4()}",
            "source": source,
        }
        if params:
            body["params"] = dict(params)
        return self._call("runWorkflow", body)

    def cancel_run(self, run_id: str) -> Result:
        """Cancel a queued or running run. payload: ``{runId, status, cancelled}``."""
        return self._call("cancelRun", {"runId": run_id})

    def get_run(self, run_id: str) -> Result:
        """A run and its tasks. payload: ``{run, tasks}``."""
        return self._call("getRun", {"runId": run_id})

    def list_runs(
        self,
        workflow_id: Optional[str] = None,
        status: Optional[Iterable[str]] = None,
        source: Optional[str] = None,
        since: Optional[TimeLike] = None,
        until: Optional[TimeLike] = None,
        order: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Result:
        """Runs, filtered. payload: ``{runs, nextCursor}``."""
        body = _present(
            workflowId=workflow_id,
            status=None if status is None else ([status] if isinstance(status, str) else list(status)),
            source=source,
            since=None if since is None else iso_time(since),
            until=None if until is None else iso_time(until),
            order=order,
            limit=None if limit is None else int(limit),
            cursor=cursor,
        )
        return self._call("listRuns", body)

    def get_recent_workflow_statuses(self, limit: int = 10) -> Result:
        """The most recent runs, newest first (the original client's call)."""
        return self.list_runs(order="desc", limit=limit)

    def query_logs(
        self,
        start_timestamp_ms: Optional[TimeLike] = None,
        end_timestamp_ms: Optional[TimeLike] = None,
        workflow_id: Optional[str] = None,
        workflow_instance_id: Optional[str] = None,
        verbose: bool = False,
        *,
        run_id: Optional[str] = None,
        task_id: Optional[str] = None,
        level: Optional[str] = None,
        order: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Result:
        """Stored log lines. payload: ``{lines, nextCursor}``.

        The first five arguments keep the original client's order; ``workflow_instance_id`` is
        the run id. ``verbose`` is accepted for compatibility and ignored (lines are records).
        """
        del verbose
        body = _present(
            since=None if start_timestamp_ms is None else iso_time(start_timestamp_ms),
            until=None if end_timestamp_ms is None else iso_time(end_timestamp_ms),
            workflowId=workflow_id,
            runId=run_id if run_id is not None else workflow_instance_id,
            taskId=task_id,
            level=level,
            order=order,
            limit=None if limit is None else int(limit),
            cursor=cursor,
        )
        return self._call("queryLogs", body)

    def list_agents(self, limit: Optional[int] = None, cursor: Optional[str] = None) -> Result:
        """Registered agents. payload: ``{agents, nextCursor}``.

        Without ``limit`` and ``cursor``: every agent (the pages of ``listAgents`` followed,
        ``nextCursor`` None). With either: that one page; pass its ``nextCursor`` as ``cursor``
        for the next one.
        """
        if limit is not None or cursor is not None:
            body: Dict[str, Any] = {}
            if limit is not None:
                body["limit"] = int(limit)
            if cursor is not None:
                body["cursor"] = cursor
            return self._call("listAgents", body)
        agents: List[Any] = []
        page_cursor: Optional[str] = None
        while True:
            page = self._call("listAgents", {} if page_cursor is None else {"cursor": page_cursor})
            if not page.success:
                return page
            agents.extend(page.payload.get("agents", []))
            page_cursor = page.payload.get("nextCursor")
            if page_cursor is None or not page.payload.get("agents"):
                return Result.ok({"agents": agents, "nextCursor": None})

    def get_registered_agents(self) -> Result:
        """Alias of :meth:`list_agents` (the original client's name)."""
        return self.list_agents()

    def wait_for_run(self, run_id: str, timeout_s: float = 30.0, poll_s: float = 0.2) -> Result:
        """Poll :meth:`get_run` until the run reaches a final state or ``timeout_s`` passes.

        Returns the last ``get_run`` Result; on timeout a failed Result with code ``TIMEOUT``.
        """
        end = time.time() + timeout_s
        last: Result = Result.failed(CdktrError("TIMEOUT", f"run {run_id} not finished"))
        while True:
            res = self.get_run(run_id)
            if res.success:
                last = res
                if res.payload["run"]["status"] in TERMINAL_RUN_STATUSES:
                    return res
            elif not res.retryable:
                return res
            if time.time() >= end:
                status = last.payload["run"]["status"] if last.success else "unknown"
                return Result.failed(
                    CdktrError("TIMEOUT", f"run {run_id} still {status} after {timeout_s} s")
                )
            time.sleep(poll_s)
