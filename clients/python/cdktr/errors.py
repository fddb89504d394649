"""Errors raised by the cdktr client (``Principal.request``; the typed methods return a Result)."""

from __future__ import annotations

# Codes for which sending the same request again later may succeed (same list as @cdktr/protocol).
RETRYABLE_CODES = frozenset(
    {"DEADLINE_EXCEEDED", "SHUTTING_DOWN", "NOT_LEADER", "INTERNAL", "TIMEOUT", "UNAVAILABLE"}
)


class CdktrError(Exception):
    """An error from the principal (its ``code``) or from the transport (TIMEOUT, UNAVAILABLE, CLOSED).

    ``code`` is stable (e.g. ``WORKFLOW_NOT_FOUND``), ``message`` says what to do, ``retryable``
    tells whether sending the same request again later may succeed.
    """

    def __init__(
        self,
        code: str,
        message: str,
        retryable: bool | None = None,
        leader: dict | None = None,
        unsent: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = code in RETRYABLE_CODES if retryable is None else bool(retryable)
        #: On ``NOT_LEADER``: the leader's ``{api, logs, publish}`` when the principal knows it.
        self.leader = leader
        #: On ``TIMEOUT``: the request never left (no connection), so it may be sent elsewhere.
        self.unsent = unsent

    def to_dict(self) -> dict:
        """The ``{code, message, retryable}`` wire form."""
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class KeyFileError(CdktrError):
    """A client key that cannot be used: ``KEY_FILE_MISSING``, ``KEY_FILE_UNSAFE`` (group or
    others may read the file: ``chmod 600`` it) or ``KEY_FILE_INVALID`` (not JSON, a field wrong).

    Raised by the constructors of the clients (a configuration error, never a Result).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, retryable=False)
