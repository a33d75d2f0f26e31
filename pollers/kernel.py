"""Access to the kernel objects behind the stdlib's selectors and asyncio's loop.

Every use of a private attribute of the standard library lives here, each with
its reason, so that a change in CPython breaks one small module:

- ``BaseSelector._selector``: the ``select.epoll`` / ``select.poll`` /
  ``select.devpoll`` object of an `EpollSelector`, `PollSelector` or
  `DevpollSelector`. `selectors` offers no public way to wait on it, and
  waiting on it directly skips the selector's per-event translation and key
  look-up (the selectors backend finds each ready descriptor's registration,
  and its delivery table, in the poller's own map instead).
- ``BaseSelectorEventLoop._selector``: the selector of an asyncio loop, for
  deleting a stale kernel entry that asyncio itself does not handle.

Stale entries: after a descriptor is closed while registered, its number can
be reused. epoll keeps an entry alive as long as any duplicate of the closed
descriptor is open, so adding the new descriptor fails with EEXIST although
the selector has no key for it; modifying one whose kernel entry is gone fails
with ENOENT. As libevent does, the backends delete the stale entry and add the
descriptor again.
"""

from __future__ import annotations

import selectors
from typing import Any, Callable, List, Optional, Tuple

#: select(2) cannot watch a descriptor at or above FD_SETSIZE, which is 1024 on
#: Linux (glibc) and FreeBSD; CPython does not export the constant.
FD_SETSIZE = 1024


def check_select_limit(fd: int) -> None:
    """ValueError, saying why, if select(2) cannot watch descriptor ``fd``."""
    if fd >= FD_SETSIZE:
        raise ValueError(
            f"descriptor {fd} is too large for select(), which only handles "
            f"descriptors below FD_SETSIZE ({FD_SETSIZE}); use epoll, kqueue or poll"
        )


#: ``poll(timeout, maxevents)`` of a ``select.epoll`` object.
EpollWait = Callable[[float, int], List[Tuple[int, int]]]
#: ``poll(timeout_ms)`` of a ``select.poll`` or ``select.devpoll`` object.
PollWait = Callable[[Optional[int]], List[Tuple[int, int]]]


def kernel_object(selector: selectors.BaseSelector) -> Any:
    """The kernel object behind ``selector`` (epoll, poll or devpoll), or None."""
    return getattr(selector, "_selector", None)


def wait_of(selector: selectors.BaseSelector) -> Callable[..., List[Tuple[int, int]]]:
    """The kernel object's own ``poll`` method, which returns ``[(fd, mask), ...]``."""
    kernel = kernel_object(selector)
    if kernel is None or not hasattr(kernel, "poll"):
        raise TypeError(f"{type(selector).__name__} has no poll-style kernel object")
    wait: Callable[..., List[Tuple[int, int]]] = kernel.poll
    return wait


def loop_selector(loop: Any) -> Optional[selectors.BaseSelector]:
    """The selector of an asyncio selector event loop; None for other loops (uvloop)."""
    selector = getattr(loop, "_selector", None)
    return selector if isinstance(selector, selectors.BaseSelector) else None


def forget_stale_entry(selector: Optional[selectors.BaseSelector], fd: int) -> bool:
    """Delete the kernel's entry for ``fd`` behind ``selector``'s back; False if impossible.

    For EEXIST on add: the kernel still holds this number though the selector
    has no key for it (see the module docstring); the caller then adds it again.
    """
    unregister = getattr(kernel_object(selector), "unregister", None) if selector else None
    if unregister is None:
        return False
    try:
        unregister(fd)
    except OSError:
        return False
    return True
