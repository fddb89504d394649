"""cdktr: Python client of the cdktr principal and base class for event listeners."""

from .errors import CdktrError
from .listener import EventListener
from .principal import TERMINAL_RUN_STATUSES, Principal
from .result import Result

__all__ = ["CdktrError", "EventListener", "Principal", "Result", "TERMINAL_RUN_STATUSES"]
__version__ = "0.1.0"
