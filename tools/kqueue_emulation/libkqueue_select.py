"""``select.kqueue`` and ``select.kevent`` over libkqueue, for running the kqueue paths on Linux.

Test and benchmark support only (it lives under ``tools/`` and neither ``pollers`` nor ``server``
can import it). With ``POLLERS_KQUEUE=libkqueue``, `install` gives the ``select``
module the kqueue API that CPython has on the BSDs and macOS, implemented with
ctypes over libkqueue (a userspace kqueue(2) over epoll, built by
`libkqueue_build`), and defines ``selectors.KqueueSelector`` from the standard
library's own source, so that the ``selectors-kqueue`` variant runs here. It is
an emulation: libkqueue's documented differences from BSD kqueue (its BUGS.md)
apply, and the tests label what runs on it as ``selectors-kqueue-libkqueue``.

What is reproduced of CPython's ``select`` module (Modules/selectmodule.c):
``kevent(ident, filter=KQ_FILTER_READ, flags=KQ_EV_ADD, fflags=0, data=0,
udata=0)`` with its argument conversions, attributes, ordering and equality (by
all six fields; unhashable) and repr; ``kqueue()`` with ``closed``, ``fileno()``,
``close()`` (idempotent), ``fromfd()``, a non-inheritable descriptor, and
``control(changelist, maxevents, timeout=None)``: ValueError on a closed queue,
on a negative maxevents or timeout, TypeError for a bad timeout or change, a
timeout rounded up to the nanosecond, EINTR retried with the time left (PEP 475),
OSError with the errno otherwise. As on CPython 3.12 and later, a queue is
closed in a forked child (BSD kqueues are not inherited by fork(2)).
"""

from __future__ import annotations

import ast
import ctypes
import errno
import math
import operator
import os
import select
import selectors
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Tuple

from libkqueue_build import COMMIT, LibkqueueBuildError, build

__all__ = ["LibkqueueBuildError", "install", "installed", "kevent", "kqueue", "mode_requested"]

#: The environment variable that turns the mode on, and its one accepted value.
MODE_VARIABLE = "POLLERS_KQUEUE"
MODE = "libkqueue"
#: This directory: on PYTHONPATH, its sitecustomize installs the emulation at start-up.
EMULATION_DIR = Path(__file__).resolve().parent
#: How the emulation is named where results are shown (test ids, reports).
LABEL = "libkqueue"
DESCRIPTION = f"kqueue emulated by libkqueue {COMMIT} over epoll on {sys.platform}, not BSD"


#: libkqueue's differences from BSD kqueue that the suites meet, each shown against
#: libkqueue alone by a test in tests/test_kqueue_emulation.py. A test marked
#: ``@pytest.mark.libkqueue_difference(REASON)`` is xfail(strict=True) on the
#: emulated variant, with the reason.
CLOSE_KEEPS_KNOTES = (
    "libkqueue does not clean up after a descriptor closed while registered (its "
    "BUGS.md: 'the internal kqueue state is not cleaned up'): its epoll entry lives on "
    "while a dup holds the socket open, so adding that socket back under the same number "
    "fails with EEXIST; BSD kqueue drops a descriptor's knotes on close(2)"
)
SO_ERROR_CLEARED = (
    "libkqueue reads a socket's pending error with getsockopt(SO_ERROR) to report it "
    "in the event's fflags, which clears it, so recv() after a peer's reset returns b'' "
    "instead of raising ConnectionResetError; BSD kqueue reports so_error and leaves it"
)
EV_ADD_REFUSED = (
    "libkqueue refuses EV_ADD on an existing socket knote unless EV_CLEAR is set "
    "(its read/write kn_modify returns -1, errno left 0); BSD kqueue modifies the knote"
)


def mode_requested() -> bool:
    """True if ``POLLERS_KQUEUE=libkqueue``; ValueError for any other non-empty value."""
    value = os.environ.get(MODE_VARIABLE, "").strip()
    if value and value != MODE:
        raise ValueError(f"{MODE_VARIABLE}={value!r}: the only mode is {MODE!r} (or unset)")
    return value == MODE


# -- the constants CPython's select exports on FreeBSD (libkqueue's sys/event.h, same values) --

CONSTANTS = {
    "KQ_FILTER_READ": -1,
    "KQ_FILTER_WRITE": -2,
    "KQ_FILTER_AIO": -3,
    "KQ_FILTER_VNODE": -4,
    "KQ_FILTER_PROC": -5,
    "KQ_FILTER_SIGNAL": -6,
    "KQ_FILTER_TIMER": -7,
    "KQ_EV_ADD": 0x0001,
    "KQ_EV_DELETE": 0x0002,
    "KQ_EV_ENABLE": 0x0004,
    "KQ_EV_DISABLE": 0x0008,
    "KQ_EV_ONESHOT": 0x0010,
    "KQ_EV_CLEAR": 0x0020,
    "KQ_EV_SYSFLAGS": 0xF000,
    "KQ_EV_FLAG1": 0x2000,
    "KQ_EV_EOF": 0x8000,
    "KQ_EV_ERROR": 0x4000,
    "KQ_NOTE_LOWAT": 0x0001,
    "KQ_NOTE_DELETE": 0x0001,
    "KQ_NOTE_WRITE": 0x0002,
    "KQ_NOTE_EXTEND": 0x0004,
    "KQ_NOTE_ATTRIB": 0x0008,
    "KQ_NOTE_LINK": 0x0010,
    "KQ_NOTE_RENAME": 0x0020,
    "KQ_NOTE_REVOKE": 0x0040,
    "KQ_NOTE_EXIT": 0x80000000,
    "KQ_NOTE_FORK": 0x40000000,
    "KQ_NOTE_EXEC": 0x20000000,
    "KQ_NOTE_PCTRLMASK": 0xF0000000,
    "KQ_NOTE_PDATAMASK": 0x000FFFFF,
    "KQ_NOTE_TRACK": 0x00000001,
    "KQ_NOTE_CHILD": 0x00000004,
    "KQ_NOTE_TRACKERR": 0x00000002,
}


# -- the C side -----------------------------------------------------------------------


class _KEvent(ctypes.Structure):
    """libkqueue's ``struct kevent`` (FreeBSD's before 12 added ``ext[4]``)."""

    _fields_ = [
        ("ident", ctypes.c_size_t),  # uintptr_t
        ("filter", ctypes.c_short),
        ("flags", ctypes.c_ushort),
        ("fflags", ctypes.c_uint),
        ("data", ctypes.c_ssize_t),  # intptr_t
        ("udata", ctypes.c_void_p),
    ]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_library: Optional[ctypes.CDLL] = None


def _lib() -> ctypes.CDLL:
    global _library
    if _library is None:
        library = ctypes.CDLL(str(build()), use_errno=True)  # calls release the GIL
        library.kqueue.argtypes = []
        library.kqueue.restype = ctypes.c_int
        library.kevent.argtypes = [
            ctypes.c_int,
            ctypes.POINTER(_KEvent),
            ctypes.c_int,
            ctypes.POINTER(_KEvent),
            ctypes.c_int,
            ctypes.POINTER(_Timespec),
        ]
        library.kevent.restype = ctypes.c_int
        _library = library
    return _library


def _os_error(number: int) -> OSError:
    return OSError(number, os.strerror(number))


# -- kevent ---------------------------------------------------------------------------

_USHORT_MASK = 0xFFFF
_UINT_MASK = 0xFFFFFFFF
_UINTPTR_MASK = (1 << (8 * ctypes.sizeof(ctypes.c_void_p))) - 1
_INTPTR_MAX = _UINTPTR_MASK >> 1


def _to_ident(value: Any) -> int:
    """As CPython: an int (negative: OverflowError), else the result of ``fileno()``."""
    if isinstance(value, int):
        if value < 0:
            raise OverflowError("can't convert negative int to unsigned")
        if value > _UINTPTR_MASK:
            raise OverflowError("Python int too large to convert to C size_t")
        return value
    fileno = getattr(value, "fileno", None)
    if fileno is None:
        raise TypeError("argument must be an int, or have a fileno() method.")
    number = fileno()
    if not isinstance(number, int):
        raise TypeError("fileno() returned a non-integer")
    if number < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({number})")
    return number


def _to_short(value: Any) -> int:
    number = operator.index(value)
    if not -0x8000 <= number <= 0x7FFF:
        side = "greater than maximum" if number > 0 else "less than minimum"
        raise OverflowError(f"signed short integer is {side}")
    return number


def _masked(mask: int) -> Callable[[Any], int]:
    """The conversion of PyArg's unchecked unsigned formats (H, I, K): the low bits."""

    def convert(value: Any) -> int:
        return operator.index(value) & mask

    return convert


def _to_intptr(value: Any) -> int:
    number = operator.index(value)
    if not -_INTPTR_MAX - 1 <= number <= _INTPTR_MAX:
        raise OverflowError("Python int too large to convert to C long")
    return number


class _Field:
    """A kevent attribute, converted on assignment as CPython's member would be."""

    def __init__(self, convert: Callable[[Any], int]) -> None:
        self._convert = convert
        self._slot = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, instance: Any, owner: Optional[type] = None) -> Any:
        return self if instance is None else getattr(instance, self._slot)

    def __set__(self, instance: Any, value: Any) -> None:
        setattr(instance, self._slot, self._convert(value))


class kevent:  # CPython's name
    """A kernel event: a change to apply to a kqueue, or an event it reported."""

    __slots__ = ("_data", "_fflags", "_filter", "_flags", "_ident", "_udata")
    _ident: int
    _filter: int
    _flags: int
    _fflags: int
    _data: int
    _udata: int
    __hash__ = None  # type: ignore[assignment]  # as CPython: comparable, so unhashable

    def __init__(
        self,
        ident: Any,
        filter: int = CONSTANTS["KQ_FILTER_READ"],  # CPython's keyword
        flags: int = CONSTANTS["KQ_EV_ADD"],
        fflags: int = 0,
        data: int = 0,
        udata: int = 0,
    ) -> None:
        self.ident = ident
        self.filter = filter
        self.flags = flags
        self.fflags = fflags
        self.data = data
        self.udata = udata

    ident = _Field(_to_ident)
    filter = _Field(_to_short)
    flags = _Field(_masked(_USHORT_MASK))
    fflags = _Field(_masked(_UINT_MASK))
    data = _Field(_to_intptr)
    udata = _Field(_masked(_UINTPTR_MASK))

    def _key(self) -> Tuple[int, int, int, int, int, int]:
        udata = self._udata - (_UINTPTR_MASK + 1) if self._udata > _INTPTR_MAX else self._udata
        return (self._ident, self._filter, self._flags, self._fflags, self._data, udata)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, kevent) else NotImplemented

    def __ne__(self, other: object) -> bool:
        return self._key() != other._key() if isinstance(other, kevent) else NotImplemented

    def __lt__(self, other: object) -> bool:
        return self._key() < other._key() if isinstance(other, kevent) else NotImplemented

    def __le__(self, other: object) -> bool:
        return self._key() <= other._key() if isinstance(other, kevent) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return self._key() > other._key() if isinstance(other, kevent) else NotImplemented

    def __ge__(self, other: object) -> bool:
        return self._key() >= other._key() if isinstance(other, kevent) else NotImplemented

    def __repr__(self) -> str:
        return (
            f"<select.kevent ident={self._ident} filter={self._filter} flags={self._flags:#x} "
            f"fflags={self._fflags:#x} data={self._data & _UINTPTR_MASK:#x} "
            f"udata={self._udata:#x}>"
        )

    def _to_c(self, target: _KEvent) -> None:
        target.ident = self._ident
        target.filter = self._filter
        target.flags = self._flags
        target.fflags = self._fflags
        target.data = self._data
        target.udata = self._udata or None

    @classmethod
    def _from_c(cls, source: _KEvent) -> kevent:
        event = cls.__new__(cls)
        event._ident = source.ident
        event._filter = source.filter
        event._flags = source.flags
        event._fflags = source.fflags
        event._data = source.data
        event._udata = source.udata or 0
        return event


# -- kqueue ---------------------------------------------------------------------------

#: Every open queue, so that a forked child can mark them closed (as CPython 3.12+).
_open_queues: weakref.WeakSet[kqueue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for queue in list(_open_queues):
        queue._fd = -1
    _open_queues.clear()


if sys.version_info >= (3, 12):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _timeout_to_timespec(timeout: Any) -> Optional[Tuple[int, int]]:
    """CPython's conversion: None (wait forever), else seconds rounded up to the nanosecond."""
    if timeout is None:
        return None
    if isinstance(timeout, float):
        if math.isnan(timeout):
            raise ValueError("Invalid value NaN (not a number)")
        nanoseconds = math.ceil(timeout * 1e9) if timeout > 0 else math.floor(timeout * 1e9)
    elif isinstance(timeout, int):
        nanoseconds = timeout * 1_000_000_000
    else:
        raise TypeError(
            f"timeout argument must be a number or None, got {type(timeout).__name__}"
        )
    seconds, rest = divmod(nanoseconds, 1_000_000_000)
    if seconds < 0:
        raise ValueError("timeout must be positive or None")
    return seconds, rest


class kqueue:  # CPython's name
    """A kernel event queue (libkqueue's, here): ``control()`` applies changes and waits."""

    def __init__(self) -> None:
        self._fd = -1
        number = _lib().kqueue()
        if number < 0:
            raise _os_error(ctypes.get_errno())
        self._fd = number
        os.set_inheritable(number, False)
        _open_queues.add(self)

    @classmethod
    def fromfd(cls, fd: int) -> kqueue:
        """A queue object for an existing kqueue descriptor (which it will close)."""
        queue = cls.__new__(cls)
        queue._fd = operator.index(fd)
        _open_queues.add(queue)
        return queue

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _check_open(self) -> int:
        if self._fd < 0:
            raise ValueError("I/O operation on closed kqueue object")
        return self._fd

    def fileno(self) -> int:
        return self._check_open()

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        _open_queues.discard(self)
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def control(
        self, changelist: Optional[Iterable[kevent]], maxevents: int, timeout: Any = None
    ) -> List[kevent]:
        """Apply ``changelist``, then wait up to ``timeout`` s for up to ``maxevents`` events."""
        fd = self._check_open()
        maxevents = operator.index(maxevents)
        if maxevents < 0:
            raise ValueError(f"Length of eventlist must be 0 or positive, got {maxevents}")
        spec = _timeout_to_timespec(timeout)
        changes: List[kevent] = []
        if changelist is not None:
            try:
                changes = list(changelist)
            except TypeError:
                raise TypeError("changelist is not iterable") from None
            for change in changes:
                if not isinstance(change, kevent):
                    raise TypeError(
                        "changelist must be an iterable of select.kevent objects"
                    )
        c_changes = (_KEvent * len(changes))()
        for change, target in zip(changes, c_changes):
            change._to_c(target)
        c_events = (_KEvent * maxevents)()
        deadline = None
        c_timeout = None
        if spec is not None:
            c_timeout = _Timespec(*spec)
            deadline = time.monotonic() + spec[0] + spec[1] * 1e-9
        library = _lib()
        while True:
            ctypes.set_errno(0)  # as CPython: libkqueue may fail and leave errno as it was
            count = library.kevent(
                fd, c_changes, len(changes), c_events, maxevents,
                None if c_timeout is None else ctypes.byref(c_timeout),
            )
            if count >= 0:
                break
            number = ctypes.get_errno()
            if number != errno.EINTR:
                raise _os_error(number)
            # Interrupted by a signal: its Python handler runs here (and may raise);
            # then call again, with the same changes and the time left, as CPython
            # does (PEP 475).
            if deadline is not None:
                left = deadline - time.monotonic()
                if left < 0:
                    count = 0
                    break
                c_timeout = _Timespec(int(left), int((left % 1) * 1e9))
        return [kevent._from_c(c_events[index]) for index in range(count)]


# -- installing it ----------------------------------------------------------------------


def _define_kqueue_selector() -> None:
    """Define ``selectors.KqueueSelector`` from the standard library's own source.

    ``selectors`` defines the class only if ``select.kqueue`` existed when it was
    imported; run that ``if hasattr(select, 'kqueue'):`` block of its source now,
    in its own namespace, so the class is the stdlib's, subclass of its
    ``_BaseSelectorImpl`` (``DefaultSelector`` is left as it is: still epoll).
    """
    source_path = selectors.__file__
    tree = ast.parse(Path(source_path).read_text(), source_path)
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and "kqueue" in ast.unparse(node.test)
            and any(isinstance(item, ast.ClassDef) and item.name == "KqueueSelector"
                    for item in node.body)
        ):
            block = ast.Module(body=node.body, type_ignores=[])
            exec(compile(block, source_path, "exec"), vars(selectors))
            return
    raise RuntimeError(f"no KqueueSelector definition found in {source_path}")


def install() -> None:
    """Give ``select`` the kqueue API over libkqueue and define ``selectors.KqueueSelector``.

    Idempotent. RuntimeError on a platform that has a kqueue of its own: there the
    real one is what must be tested.
    """
    existing = getattr(select, "kqueue", None)
    if existing is kqueue:
        return
    if existing is not None:
        raise RuntimeError(f"{sys.platform} has a kqueue of its own; nothing to emulate")
    # Build it now, so that a missing tarball or compiler fails here, clearly; it is
    # loaded (and starts its monitoring thread) when the first queue is made.
    build()
    for name, value in CONSTANTS.items():
        setattr(select, name, value)
    setattr(select, "kevent", kevent)  # noqa: B010 (typeshed has no kqueue on Linux)
    setattr(select, "kqueue", kqueue)  # noqa: B010
    _define_kqueue_selector()


def installed() -> bool:
    """True if this process runs the emulation."""
    return getattr(select, "kqueue", None) is kqueue
