"""Detached processes of the local stack: start, identify, probe, stop.

A component is started through a short-lived launcher process, so the daemon
is never a child of the caller: it survives the CLI that started it, and a
long-lived caller (a test session) collects no zombies and no "subprocess still
running" warnings. Each daemon leads its own session (its pid is its process
group), is remembered in a pid file, and is recognised by a marker in its
command line, so a recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flightrec.contracts.errors import StackError

__all__ = [
    "ProcessSpec",
    "error_lines",
    "http_ok",
    "is_alive",
    "port_open",
    "read_pid",
    "start_detached",
    "stop_process",
    "tail",
]

# Runs in the launcher: start the daemon in a new session with its output in
# the log file, print its pid, and exit without waiting for it.
_LAUNCHER = """
import json, os, subprocess, sys
spec = json.loads(sys.stdin.read())
with open(spec["log"], "ab") as log:
    proc = subprocess.Popen(
        spec["argv"], cwd=spec["cwd"], env=spec["env"], stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
    )
sys.stdout.write(str(proc.pid))
sys.stdout.flush()
os._exit(0)
"""


@dataclass(frozen=True)
class ProcessSpec:
    """How to start one component and how to recognise it afterwards."""

    name: str
    argv: Sequence[str]
    marker: str
    log_path: Path
    pid_path: Path
    cwd: Path
    env: Mapping[str, str] | None = None


def read_pid(pid_path: Path) -> int | None:
    """The pid recorded in ``pid_path``, or None when absent or unreadable."""
    try:
        return int(pid_path.read_text("utf-8").strip())
    except (OSError, ValueError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text("utf-8")
    except OSError:
        return None
    # The state follows the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0]


def is_alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs, is not a zombie, and its command line has ``marker``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: certainly not one we started
    cmdline_path = Path(f"/proc/{pid}/cmdline")
    if not cmdline_path.exists():
        return True  # no procfs (macOS): the signal check is all we have
    if _proc_state(pid) in {"Z", "X"}:
        return False
    try:
        raw = cmdline_path.read_bytes()
    except OSError:
        return False
    if not raw:
        # Mid-exec: the kernel has switched to the new image but not yet set
        # its argument area, so cmdline reads empty for a moment. Seen right
        # after a start, when the first run of a binary loads it cold. (Kernel
        # threads also have an empty cmdline, but no executable.)
        try:
            os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return False
        return True
    return marker in raw.replace(b"\x00", b" ").decode("utf-8", "replace")


def start_detached(spec: ProcessSpec, *, timeout_s: float = 30.0) -> int:
    """Start ``spec`` as a detached daemon, write its pid file and return the pid."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    spec.pid_path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(
        {
            "argv": list(spec.argv),
            "cwd": str(spec.cwd),
            "env": dict(spec.env) if spec.env is not None else dict(os.environ),
            "log": str(spec.log_path),
        }
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER],
            # stdin, not argv: the environment may hold secrets, and argv is
            # readable by every user of the host.
            input=payload,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError("the launcher did not return", component=spec.name) from exc
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise StackError(
            "could not start component",
            component=spec.name,
            output=(done.stdout + done.stderr).strip()[-2000:],
        )
    pid = int(done.stdout.strip())
    spec.pid_path.write_text(f"{pid}\n", "utf-8")
    return pid


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # start_new_session made the daemon a group leader: signal its children too.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_process(pid_path: Path, marker: str, *, grace_s: float = 30.0) -> int | None:
    """Stop the daemon recorded in ``pid_path`` (SIGTERM, SIGKILL after ``grace_s``).

    Only a live process whose command line carries ``marker`` is signalled.
    Returns the pid that was stopped, or None if nothing of ours was running.
    The pid file is removed either way.
    """
    pid = read_pid(pid_path)
    stopped: int | None = None
    if pid is not None and is_alive(pid, marker):
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while is_alive(pid, marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_alive(pid, marker):
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10.0
            while is_alive(pid, marker) and time.monotonic() < deadline:
                time.sleep(0.05)
        stopped = pid
    pid_path.unlink(missing_ok=True)
    return stopped


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 1.0) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _read_end(path: Path, max_bytes: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ("" if it does not exist)."""
    return "\n".join(_read_end(path, 64 * 1024).splitlines()[-lines:])


def error_lines(path: Path, limit: int = 6) -> list[str]:
    """The first ERROR/FATAL lines and root causes near the end of a log.

    A JVM failure ends in a long stack trace; the line that explains it (an
    ``ERROR`` or a ``Caused by: ...BindException``) is usually far above.
    """
    found: list[str] = []
    for line in _read_end(path, 512 * 1024).splitlines():
        text = line.strip()
        if (" ERROR " in text or " FATAL " in text or text.startswith("Caused by:")) and (
            text not in found
        ):
            found.append(text)
            if len(found) >= limit:
                break
    return found
