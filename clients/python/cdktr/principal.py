"""A client of the cdktr principal's API channel (ZeroMQ DEALER speaking ``cdktr/1``).

Wire format (see docs/protocol.md): a request is the multipart message
``[b"cdktr/1", request_id, deadline_ms, verb, json_body]`` and the reply
``[b"cdktr/1", request_id, b"ok" | b"error", json_body]``; an error body is
``{"code", "message", "retryable"}``. With a key (section 2.1) the socket speaks CURVE to the
pinned principal key and the connection is bound to the key by ``hello`` before its first request.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Union

from .channel import IDEMPOTENT_VERBS, PROTOCOL, Channel
from .errors import CdktrError
from .result import Result

__all__ = ["IDEMPOTENT_VERBS", "PROTOCOL", "TERMINAL_RUN_STATUSES", "Principal", "iso_time", "new_idempotency_key"]

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


def _present(**fields: Any) -> Dict[str, Any]:
    """The request body: the given fields, without those left as None."""
    return {k: v for k, v in fields.items() if v is not None}


_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_idempotency_key() -> str:
    """A fresh idempotency key, ``auto:<time>-<uuid>``: the time in base-36 milliseconds of fixed
    width first (keys sort by time and land at the end of the principal's key index), as the
    TypeScript client makes them."""
    ms = int(time.time() * 1000)
    digits = ""
    while ms > 0:
        ms, d = divmod(ms, 36)
        digits = _BASE36[d] + digits
    return f"auto:{digits.rjust(9, '0')}-{uuid.uuid4()}"


class Principal(Channel):
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
        endpoints: API endpoints of several principals sharing one database
            (``["tcp://host1:5561", "tcp://host2:5561"]``); overrides host and port. Default:
            ``CDKTR_PRINCIPAL_ENDPOINTS`` (``host1:5561,host2:5561``) when neither host nor port
            is given.
        leader_wait_ms: how long one call keeps looking for the leader among several principals
            (elections, silent principals). Default 20000.

    With several principals the client follows the leader: a standby's ``NOT_LEADER`` sends the
    request on to the leader it names (at once; after a backoff to the next principal while none
    leads), and silence moves to the next principal, resending only idempotent calls (and
    ``run_workflow``, whose idempotency key makes it safe). :attr:`leader` is the leader as last
    heard of (``ping`` asks).

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
            "idempotencyKey": idempotency_key or new_idempotency_key(),
            "source": source,
        }
        if params:
            body["params"] = dict(params)
        return self._call("runWorkflow", body)

    def run_workflows(self, triggers: Iterable[Dict[str, Any]], source: str = "python") -> List[Result]:
        """Queue many runs in one request (``runWorkflows``: stored together; at most 1,000).

        Each trigger is a dict with ``workflow_id`` and optionally ``params``, ``idempotency_key``
        and ``source``. Returns one :class:`Result` per trigger, in order, each as
        :meth:`run_workflow` would return it: one refused trigger never fails the others. When the
        request itself fails (principal unreachable, a key that may not trigger), every trigger's
        result carries that error. Keys are generated for triggers without one and reused on retries.
        """
        items: List[Dict[str, Any]] = []
        for t in triggers:
            item: Dict[str, Any] = {
                "workflowId": t["workflow_id"],
                "idempotencyKey": t.get("idempotency_key") or new_idempotency_key(),
                "source": t.get("source") or source,
            }
            if t.get("params"):
                item["params"] = dict(t["params"])
            items.append(item)
        try:
            reply = self.request("runWorkflows", {"items": items})
        except CdktrError as e:
            return [Result.failed(e) for _ in items]
        out: List[Result] = []
        for r in reply.get("results", []):
            if r.get("ok"):
                out.append(Result.ok({k: v for k, v in r.items() if k != "ok"}))
            else:
                err = r.get("error") or {}
                out.append(
                    Result.failed(
                        CdktrError(
                            err.get("code", "INTERNAL"),
                            err.get("message", "no message"),
                            retryable=bool(err.get("retryable", False)),
                        )
                    )
                )
        return out

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
