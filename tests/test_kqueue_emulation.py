"""``select.kqueue`` itself, wherever it exists: the BSDs' own, or libkqueue's in the
emulated mode (``POLLERS_KQUEUE=libkqueue``, tests/kqueue_emulation/).

The first tests hold the emulation to CPython's API (what ``selectors`` and our
kqueue path rely on); on FreeBSD the same tests check them against the real thing.
The last ones show, against kqueue alone (no poller, no selector), each difference
of libkqueue from BSD kqueue that the suites meet: they pass on BSD and are
xfail(strict=True) on libkqueue, so a libkqueue that changes is noticed.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any, Iterator, List

import libkqueue_select
import pytest
from helpers import reset_connection

from pollers.selector_poller import SELECTOR_PLATFORMS

EMULATED = libkqueue_select.installed()
pytestmark = pytest.mark.skipif(
    not hasattr(select, "kqueue"),
    reason=(
        f"select.kqueue needs {SELECTOR_PLATFORMS['kqueue']} (this platform is "
        f"{sys.platform}), or the emulated mode {libkqueue_select.MODE_VARIABLE}="
        f"{libkqueue_select.MODE}"
    ),
)

#: How long any wait here may take before the test fails (a loaded 2-core machine).
BOUND = 5.0

# The names exist only where select has a kqueue (typeshed: the BSDs and macOS).
sel: Any = select


def libkqueue_difference(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(EMULATED, strict=True, reason=reason)


@pytest.fixture
def kq() -> Iterator[Any]:
    queue = sel.kqueue()
    yield queue
    queue.close()


@pytest.fixture
def pair() -> Iterator[List[socket.socket]]:
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    yield [left, right]
    left.close()
    right.close()


def change(sock: Any, filter_name: str, *flag_names: str) -> Any:
    flags = 0
    for name in flag_names:
        flags |= getattr(sel, f"KQ_EV_{name}")
    return sel.kevent(sock, getattr(sel, f"KQ_FILTER_{filter_name}"), flags)


def events_of(queue: Any, maxevents: int = 8, timeout: float = BOUND) -> List[Any]:
    return list(queue.control(None, maxevents, timeout))


# -- the API ------------------------------------------------------------------------


def test_a_queue_has_a_private_descriptor_and_closes_once() -> None:
    queue = sel.kqueue()
    assert queue.fileno() > 0 and not queue.closed
    assert not os.get_inheritable(queue.fileno())
    queue.close()
    assert queue.closed
    with pytest.raises(ValueError, match="closed kqueue"):
        queue.fileno()
    with pytest.raises(ValueError, match="closed kqueue"):
        queue.control(None, 1, 0)
    queue.close()  # idempotent


def test_kevent_defaults_attributes_order_and_equality(pair: List[socket.socket]) -> None:
    event = sel.kevent(pair[0])
    assert (event.ident, event.filter, event.flags) == (
        pair[0].fileno(), sel.KQ_FILTER_READ, sel.KQ_EV_ADD,
    )
    assert (event.fflags, event.data, event.udata) == (0, 0, 0)
    same = sel.kevent(pair[0].fileno(), sel.KQ_FILTER_READ, sel.KQ_EV_ADD)
    later = sel.kevent(pair[0].fileno() + 1)
    assert event == same and event != later and event < later and later >= event
    assert sel.kevent(1, 2, 3, 4, 5, 6) != sel.kevent(1, 2, 3, 4, 5, 7)
    assert sel.kevent(0, 1, 0xFFFF, 0xFFFFFFFF).fflags == 0xFFFFFFFF
    assert event != "event"
    with pytest.raises(TypeError):
        event < None  # noqa: B015 (the comparison is the test)
    with pytest.raises(TypeError):
        hash(event)
    with pytest.raises(TypeError):
        sel.kevent("not a descriptor")
    with pytest.raises(OverflowError):
        sel.kevent(-1)


def test_control_checks_its_arguments(kq: Any) -> None:
    with pytest.raises(ValueError):
        kq.control(None, -1, 0)
    with pytest.raises(ValueError):
        kq.control(None, 1, -1)
    with pytest.raises(TypeError):
        kq.control(None, 1, "1")
    with pytest.raises(TypeError):
        kq.control([object()], 0, 0)
    with pytest.raises(TypeError):
        kq.control(1, 0, 0)
    assert kq.control(None, 0, 0) == []
    assert kq.control(iter([]), 4, 0) == []


def test_control_waits_for_its_timeout_and_returns_nothing(kq: Any) -> None:
    started = time.monotonic()
    assert kq.control(None, 4, 0.05) == []
    assert time.monotonic() - started >= 0.05


def test_read_and_write_filters_report_readiness(kq: Any, pair: List[socket.socket]) -> None:
    mine, peer = pair
    kq.control([change(mine, "READ", "ADD"), change(mine, "WRITE", "ADD")], 0, 0)
    reported = events_of(kq)
    assert [(e.ident, e.filter) for e in reported] == [(mine.fileno(), sel.KQ_FILTER_WRITE)]
    peer.send(b"12345")
    reported = events_of(kq)
    assert sorted((e.ident, e.filter) for e in reported) == sorted(
        [(mine.fileno(), sel.KQ_FILTER_READ), (mine.fileno(), sel.KQ_FILTER_WRITE)]
    )
    (read,) = [e for e in reported if e.filter == sel.KQ_FILTER_READ]
    assert read.data == 5 and not read.flags & sel.KQ_EV_EOF
    kq.control([change(mine, "WRITE", "DELETE")], 0, 0)
    peer.close()
    (eof,) = events_of(kq)
    assert eof.filter == sel.KQ_FILTER_READ and eof.flags & sel.KQ_EV_EOF


def test_errors_are_oserrors_with_the_errno(kq: Any, pair: List[socket.socket]) -> None:
    with pytest.raises(FileNotFoundError):  # ENOENT: no such registration
        kq.control([change(pair[0], "READ", "DELETE")], 0, 0)
    closed = socket.socket()
    number = closed.detach()
    os.close(number)
    with pytest.raises(OSError) as refused:
        kq.control([sel.kevent(number, sel.KQ_FILTER_READ, sel.KQ_EV_ADD)], 0, 0)
    assert refused.value.errno == errno.EBADF


def test_a_signal_interrupting_the_wait_runs_its_handler_and_the_wait_goes_on(kq: Any) -> None:
    """PEP 475: EINTR is retried for the time left; the Python handler runs meanwhile."""
    caught: List[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: caught.append(signum))
    sender = threading.Timer(0.05, signal.pthread_kill, (threading.main_thread().ident,
                                                         signal.SIGUSR1))
    try:
        started = time.monotonic()
        sender.start()
        assert kq.control(None, 4, 0.3) == []
        elapsed = time.monotonic() - started
    finally:
        sender.cancel()
        sender.join(BOUND)
        signal.signal(signal.SIGUSR1, previous)
    assert caught == [signal.SIGUSR1]
    assert elapsed >= 0.3


# libkqueue runs a thread (it notices closed queues), so this fork is a threaded one.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.skipif(sys.version_info < (3, 12), reason="CPython closes kqueues on fork from 3.12")
def test_a_forked_child_sees_the_queue_closed(kq: Any) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0 if kq.closed else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not kq.closed


# -- libkqueue's differences from BSD kqueue, against kqueue alone ---------------------


@libkqueue_difference(libkqueue_select.EV_ADD_REFUSED)
def test_ev_add_on_an_existing_knote_modifies_it(kq: Any, pair: List[socket.socket]) -> None:
    kq.control([change(pair[0], "READ", "ADD")], 0, 0)
    kq.control([change(pair[0], "READ", "ADD")], 0, 0)


@libkqueue_difference(libkqueue_select.CLOSE_KEEPS_KNOTES)
def test_close_drops_the_knotes_so_a_dup_under_the_same_number_can_be_added(
    kq: Any, pair: List[socket.socket]
) -> None:
    """What KqueueSelector does when a registered socket was closed first: its
    EV_DELETE may fail (BSD: the knote went with the descriptor), then a dup of the
    same socket comes back under that number and is added again."""
    mine, peer = pair
    number = mine.fileno()
    kq.control([change(mine, "READ", "ADD")], 0, 0)
    duplicate = os.dup(number)
    mine.close()
    try:
        try:
            kq.control([sel.kevent(number, sel.KQ_FILTER_READ, sel.KQ_EV_DELETE)], 0, 0)
        except OSError:
            pass  # BSD: EBADF, the knote is gone already
        os.dup2(duplicate, number)
        kq.control([sel.kevent(number, sel.KQ_FILTER_READ, sel.KQ_EV_ADD)], 0, 0)
        peer.send(b"x")
        assert [e.ident for e in events_of(kq)] == [number]
    finally:
        os.close(duplicate)
        try:
            os.close(number)  # the dup2'd number, if it was made
        except OSError:
            pass


@libkqueue_difference(libkqueue_select.SO_ERROR_CLEARED)
def test_a_reset_stays_pending_for_recv_after_it_is_reported(kq: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=BOUND)
        server, _ = listener.accept()
    with server:
        server.setblocking(False)
        kq.control([change(server, "READ", "ADD")], 0, 0)
        reset_connection(client)
        (event,) = events_of(kq)
        assert event.flags & sel.KQ_EV_EOF
        with pytest.raises(ConnectionResetError):
            server.recv(100)
