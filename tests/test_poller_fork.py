"""A poller belongs to the process that made it (behaviour 10), on every variant.

In a forked child every use of the parent's poller raises PollerForkedError (an
epoll set is shared with the parent, so a child's register/unregister would change
the parent's registrations); a new poller made in the child works; closing the
parent's poller in the child releases nothing the parent still uses; and the
parent's poller keeps working afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import traceback
from typing import Any, Callable, Dict, List

import pytest
from helpers import (
    READ,
    SAFETY_TIMEOUT,
    USE_NAMES,
    Recorder,
    SafetyNet,
    Sockets,
    every_use,
    run_until,
)

from pollers import Poller, PollerClosedError, PollerForkedError

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

CHILD_TIMEOUT = 20.0
#: A wake-up from another thread must end the wait well before this.
WAKE_BOUND = 3.0


def _child(
    parent_poller: Poller, registered: socket.socket, make_poller: Callable[[], Poller]
) -> Dict[str, Any]:
    """What the child observes; runs in the forked process."""
    report: Dict[str, Any] = {"forked_errors": [], "other": {}}
    for name, use in every_use(parent_poller, registered).items():
        try:
            use()
        except PollerForkedError:
            report["forked_errors"].append(name)
        except Exception as exc:
            report["other"][name] = repr(exc)
        else:
            report["other"][name] = "no error"
    # A poller of its own works in the child.
    with make_poller() as own, Sockets() as sockets:
        mine, peer = sockets.pair()
        recorder = Recorder()
        own.register(mine, READ, recorder)
        peer.send(b"child")
        run_until(own, lambda: recorder.count > 0)
        report["own_poller_events"] = recorder.events()[:1]
    # Closing the parent's poller here must not touch what the parent still uses.
    parent_poller.close()
    try:
        parent_poller.call_soon(print)
    except (PollerClosedError, PollerForkedError) as exc:
        report["after_close"] = type(exc).__name__
    return report


def _fork_and_collect(
    parent_poller: Poller, registered: socket.socket, make_poller: Callable[[], Poller]
) -> Any:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            report = _child(parent_poller, registered, make_poller)
            os.write(write_end, json.dumps(report).encode())
            status = 0
        except BaseException:
            os.write(write_end, json.dumps({"crash": traceback.format_exc()}).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + CHILD_TIMEOUT
    status = 0
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
        pytest.fail(f"the child did not finish within {CHILD_TIMEOUT} s")
    with os.fdopen(read_end, "rb") as pipe:
        raw = pipe.read()
    report = json.loads(raw.decode()) if raw else {}
    assert "crash" not in report, report.get("crash")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, report)
    return report


def test_fork_child_refuses_the_parents_poller(
    poller: Poller, make_poller: Callable[[], Poller]
) -> None:
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        recorder = Recorder()
        poller.register(mine, READ, recorder)
        peer.send(b"before")
        run_until(poller, lambda: recorder.count > 0)
        assert mine.recv(100) == b"before"
        recorder.clear()

        report = _fork_and_collect(poller, mine, make_poller)

        assert report["other"] == {}, report["other"]
        assert sorted(report["forked_errors"]) == sorted(USE_NAMES)
        assert report["own_poller_events"] == [READ]
        assert report["after_close"] in ("PollerClosedError", "PollerForkedError")

        # The parent's poller still works: its registration and its wake-up.
        peer.send(b"after")
        run_until(poller, lambda: recorder.count > 0, message="the parent's registration")
        assert mine.recv(100) == b"after"  # idle again, so that run() below blocks
        woke: List[bool] = []

        def on_loop() -> None:
            woke.append(True)
            poller.stop()

        def wake_from_thread() -> None:
            time.sleep(0.05)
            poller.call_soon_threadsafe(on_loop)

        thread = threading.Thread(target=wake_from_thread, daemon=True)
        thread.start()
        net = SafetyNet(poller, WAKE_BOUND)
        poller.run()
        net.cancel()
        thread.join(SAFETY_TIMEOUT)
        assert not net.fired, "call_soon_threadsafe no longer wakes the parent's poller"
        assert woke == [True]
