"""Load a local HTML file in headless Chromium and report what a reader would see.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
commands on its descriptor 3, answers on 4, NUL-terminated JSON), so no
WebSocket client, no driver and no network port are needed. `render` opens the
page, waits for its load event, collects every console error, uncaught
exception and browser log error (a resource the page's Content-Security-Policy
refused is one), evaluates an expression in the page and takes a full-page
screenshot. By hand: ``python -m benchmarks.browser`` (`benchmarks.browser`).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--remote-debugging-pipe")
TIMEOUT = 60.0  # seconds for the whole visit, on a busy 2-core machine


class BrowserError(RuntimeError):
    """Chromium did not start, answer or load the page in time."""


def find_chromium() -> Optional[str]:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Visit:
    """What one page load showed."""

    errors: List[str] = field(default_factory=list)
    value: Any = None
    screenshot: Optional[bytes] = None


class _Pipe:
    """The two ends of the DevTools pipe, with a deadline on every read."""

    def __init__(self, commands: int, answers: int, deadline: float) -> None:
        self.commands, self.answers, self.deadline = commands, answers, deadline
        self.buffer = b""
        self.next_id = 0
        self.events: List[Dict[str, Any]] = []

    def send(self, method: str, params: Optional[Dict[str, Any]] = None,
             session: Optional[str] = None) -> int:
        self.next_id += 1
        message: Dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        return self.next_id

    def read(self) -> Dict[str, Any]:
        import select

        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time")
            ready, _w, _x = select.select([self.answers], [], [], left)
            if ready:
                chunk = os.read(self.answers, 1 << 20)
                if not chunk:
                    raise BrowserError("Chromium closed the DevTools pipe")
                self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        parsed: Dict[str, Any] = json.loads(message)
        return parsed

    def call(self, method: str, params: Optional[Dict[str, Any]] = None,
             session: Optional[str] = None) -> Dict[str, Any]:
        wanted = self.send(method, params, session)
        while True:
            message = self.read()
            if message.get("id") == wanted:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: Dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str) -> Dict[str, Any]:
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        while True:
            message = self.read()
            if message.get("method") == method:
                return message
            self.events.append(message)


def _errors(events: Sequence[Dict[str, Any]]) -> List[str]:
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [str(arg.get("value", arg.get("description", "")))
                     for arg in params.get("args", [])]
            found.append("console." + params["type"] + ": " + " ".join(texts))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append("exception: " + str(details.get("exception", {}).get(
                "description", details.get("text", "?"))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            found.append(f"log ({entry.get('source')}): {entry.get('text')}")
    return found


def _movable(fd: int) -> int:
    """A duplicate of ``fd`` above 9, so that moving others to 3 and 4 cannot clobber it."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)


def render(page: Path, expression: str = "document.title", screenshot: bool = True,
           width: int = 1280, chromium: Optional[str] = None) -> Visit:
    """Open ``page`` in headless Chromium; its errors, ``expression``'s value, a screenshot."""
    binary = chromium or find_chromium()
    if binary is None:
        raise BrowserError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)})")
    commands_read, commands_write = os.pipe()
    answers_read, answers_write = os.pipe()
    child_in, child_out = _movable(commands_read), _movable(answers_write)

    def setup() -> None:  # in the child: the protocol's descriptors 3 and 4
        os.dup2(child_in, 3)
        os.dup2(child_out, 4)

    profile = tempfile.mkdtemp(prefix="pollers-chromium-")
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below); a pipe could fill and block it
    process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=log, close_fds=False, preexec_fn=setup)
    for fd in (commands_read, answers_write, child_in, child_out):
        os.close(fd)
    pipe = _Pipe(commands_write, answers_read, time.monotonic() + TIMEOUT)
    visit = Visit()
    try:
        if process.poll() is not None:
            raise BrowserError(f"Chromium exited at once with status {process.returncode}")
        target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            pipe.call(domain, session=session)
        pipe.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session)
        pipe.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        pipe.wait_for("Page.loadEventFired")
        evaluated = pipe.call("Runtime.evaluate", {"expression": expression,
                                                   "returnByValue": True}, session=session)
        visit.value = evaluated.get("result", {}).get("value")
        if screenshot:
            shot = pipe.call("Page.captureScreenshot", {"format": "png",
                                                        "captureBeyondViewport": True},
                             session=session)
            visit.screenshot = base64.b64decode(shot["data"])
        visit.errors = _errors(pipe.events)
        try:
            pipe.call("Browser.close")
        except BrowserError:
            pass
    finally:
        os.close(commands_write)
        os.close(answers_read)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
    return visit
