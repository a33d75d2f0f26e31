"""``python -m pollers.server`` (``python -m server`` in a checkout): the echo-server command."""

import sys

from .cli import main

sys.exit(main())
