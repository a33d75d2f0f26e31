"""pollers: one `Poller` interface over Tornado's IOLoop, `selectors`, asyncio, Twisted's
reactors and gevent's loops.

    >>> import pollers
    >>> with pollers.create("selectors") as poller:
    ...     timer = poller.call_later(0.01, poller.stop)
    ...     poller.run()

See ``docs/contract.md`` for the contract every backend keeps.
"""

from .base import (
    Events,
    FileDescriptorLike,
    Handler,
    Poller,
    PollerClosedError,
    PollerForkedError,
    Timer,
)
from .registry import FAMILIES, VARIANTS, Variant, available, create, variants

__version__ = "0.1.0"

__all__ = [
    "FAMILIES",
    "VARIANTS",
    "Events",
    "FileDescriptorLike",
    "Handler",
    "Poller",
    "PollerClosedError",
    "PollerForkedError",
    "Timer",
    "Variant",
    "__version__",
    "available",
    "create",
    "variants",
]
