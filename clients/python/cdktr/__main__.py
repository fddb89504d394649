"""``python3 -m cdktr``: the command line of the Python client (see :mod:`cdktr.cli`)."""

import sys

from .cli import main

sys.exit(main())
