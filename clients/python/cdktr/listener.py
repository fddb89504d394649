"""Base class of event listeners written in Python."""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

from .keys import LISTENER_KEY_NAME, KeyLike
from .principal import Principal
from .result import Result


class EventListener:
    """Subclass it, implement :meth:`start_listening`, call :meth:`run_workflow` on each event.

    The principal client is ``self.principal``: set it yourself (as the original examples do:
    ``self.principal = Principal(host=..., port=...)``), pass ``principal=`` to this constructor,
    or let the first ``run_workflow`` create one from ``CDKTR_PRINCIPAL_HOST``/``PORT``.
    Calling ``super().__init__()`` is optional.

    The principal client this class creates uses ``key`` (a dict as in a key file, a key file's
    path, or ``False`` for plaintext); by default the file named by ``CDKTR_KEY_FILE``, else the
    local ``trigger`` key ``<CDKTR_KEYS_DIR or ~/.cdktr/keys>/local-listeners.json`` when it
    exists. A ``Principal`` you create yourself finds its own key (``local-operator`` unless
    you pass ``key=`` or ``key_name="local-listeners"``).
    """

    principal: Principal

    def __init__(
        self, principal: Optional[Principal] = None, source: Optional[str] = None, key: KeyLike = None
    ) -> None:
        if principal is not None:
            self.principal = principal
        if source is not None:
            self.source = source
        # Not `self.key`: a subclass may well have its own.
        self._cdktr_key = key

    def _principal(self) -> Principal:
        p = getattr(self, "principal", None)
        if p is None:
            p = Principal(key=getattr(self, "_cdktr_key", None), key_name=LISTENER_KEY_NAME)
            self.principal = p
        return p

    def run_workflow(
        self,
        workflow_id: str,
        params: Optional[Dict[str, Union[str, int, float, bool]]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Result:
        """Trigger a run of ``workflow_id``.

        Returns a :class:`Result`: ``.success``, ``.error`` (None on success), ``.run_id`` and
        ``.payload``. Never raises for a refusal or an unreachable principal. Pass the event's own
        id as ``idempotency_key`` to make a redelivered event map to the same run.

        Raises:
            KeyFileError: when it creates the principal client and the key file cannot be used.
        """
        source = getattr(self, "source", None) or type(self).__name__
        return self._principal().run_workflow(
            workflow_id, params=params, idempotency_key=idempotency_key, source=source
        )

    def start_listening(self) -> None:
        """Your event loop: wait for events and call ``self.run_workflow(...)`` for each."""
        raise NotImplementedError("Subclasses must implement start_listening()")
