"""The Result every Principal method and EventListener.run_workflow return."""

from __future__ import annotations

from typing import Any, Optional

from .errors import CdktrError


class Result:
    """Outcome of one call to the principal.

    Attributes:
        success: True when the principal accepted the request.
        error: None on success, else a readable message (``"WORKFLOW_NOT_FOUND: ..."``).
        payload: the reply body (a dict) on success, else None.
        code: None on success, else the stable error code (``WORKFLOW_NOT_FOUND``, ``TIMEOUT``...).
        retryable: on failure, whether trying again later may succeed.
        run_id: for ``run_workflow``, the id of the run (also on duplicates), else None.
        duplicate: for ``run_workflow``, True when the idempotency key was seen before.
    """

    __slots__ = ("success", "error", "payload", "code", "retryable", "run_id", "duplicate")

    def __init__(
        self,
        success: bool,
        payload: Any = None,
        error: Optional[str] = None,
        code: Optional[str] = None,
        retryable: bool = False,
    ) -> None:
        self.success = success
        self.payload = payload
        self.error = error
        self.code = code
        self.retryable = retryable
        self.run_id: Optional[str] = None
        self.duplicate = False
        if success and isinstance(payload, dict):
            run_id = payload.get("runId")
            self.run_id = run_id if isinstance(run_id, str) else None
            self.duplicate = bool(payload.get("duplicate", False))

    @classmethod
    def ok(cls, payload: Any) -> "Result":
        return cls(True, payload=payload)

    @classmethod
    def failed(cls, err: CdktrError) -> "Result":
        return cls(False, error=f"{err.code}: {err.message}", code=err.code, retryable=err.retryable)

    def __bool__(self) -> bool:
        return self.success

    def __repr__(self) -> str:
        if self.success:
            return f"Result(success=True, run_id={self.run_id!r}, payload={self.payload!r})"
        return f"Result(success=False, code={self.code!r}, error={self.error!r})"
