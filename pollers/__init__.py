"""pollers: one `Poller` interface over Tornado's IOLoop, `selectors`, asyncio, Twisted's
reactors and gevent's loops.

    >>> import pollers
    >>> with pollers.create("selectors") as poller:
    ...     timer = poller.call_later(0.01, poller.stop)
    ...     poller.run()

`pollers.attach` makes a poller over an event loop the application already
runs (asyncio, Tornado, Twisted, gevent); see ``docs/attached.md``.

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
from .registry import (
    ATTACHED_VARIANTS,
    FAMILIES,
    VARIANTS,
    Variant,
    attach,
    attached_variants,
    available,
    create,
    variants,
)

__version__ = "0.1.0"

__all__ = [
    "ATTACHED_VARIANTS",
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
    "attach",
    "attached_variants",
    "available",
    "create",
    "variants",
]
