"""Base class of event listeners written in Python."""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

from .principal import Principal
from .result import Result


class EventListener:
    """Subclass it, implement :meth:`start_listening`, call :meth:`run_workflow` on each event.

    The principal client is ``self.principal``: set it yourself (as the original examples do:
    ``self.principal = Principal(host=..., port=...)``), pass ``principal=`` to this constructor,
    or let the first ``run_workflow`` create one from ``CDKTR_PRINCIPAL_HOST``/``PORT``.
    Calling ``super().__init__()`` is optional.
    """

    principal: Principal

    def __init__(self, principal: Optional[Principal] = None, source: Optional[str] = None) -> None:
        if principal is not None:
            self.principal = principal
        if source is not None:
            self.source = source

    def _principal(self) -> Principal:
        p = getattr(self, "principal", None)
        if p is None:
            p = Principal()
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
        """
        source = getattr(self, "source", None) or type(self).__name__
        return self._principal().run_workflow(
            workflow_id, params=params, idempotency_key=idempotency_key, source=source
        )

    def start_listening(self) -> None:
        """Your event loop: wait for events and call ``self.run_workflow(...)`` for each."""
        raise NotImplementedError("Subclasses must implement start_listening()")
