"""cdktr: Python client of the cdktr principal and base class for event listeners."""

from .errors import CdktrError, KeyFileError
from .keys import ClientKey, find_key, read_key_file
from .listener import EventListener
from .principal import TERMINAL_RUN_STATUSES, Principal
from .result import Result
from .subscriber import Subscriber

__all__ = [
    "CdktrError",
    "ClientKey",
    "EventListener",
    "KeyFileError",
    "Principal",
    "Result",
    "Subscriber",
    "TERMINAL_RUN_STATUSES",
    "find_key",
    "read_key_file",
]
__version__ = "0.1.0"
