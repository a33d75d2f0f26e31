"""``python -m server``: the echo-server command."""

import sys

from .cli import main

sys.exit(main())
