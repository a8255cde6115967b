"""Run the registry as a child process (``python -m flightrec.testing.registry``).

For tests and tools that need the registry the way the stack runs it: a real
process, stopped with SIGTERM. Its log goes to a file, so a chatty child can
never block on a full pipe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RegistryProcess", "registry_process"]

_READY = "ready on "


@dataclass
class RegistryProcess:
    """A started registry process: its URL, process handle and log file."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, return the exit code (kills only if it does not stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return int(self.process.returncode)


def _wait_ready(proc: subprocess.Popen[bytes], log_path: Path, deadline_s: float) -> str:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        text = log_path.read_text(errors="replace")
        for line in text.splitlines():
            if _READY in line:
                url = line.split(_READY, 1)[1].strip()
                with (
                    contextlib.suppress(urllib.error.URLError, OSError),
                    urllib.request.urlopen(f"{url}/subjects", timeout=5) as response,
                ):
                    if response.status == 200:
                        return url
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}:\n{text}")
        time.sleep(0.1)
    raise RuntimeError(f"registry not ready after {deadline_s}s:\n{log_path.read_text()}")


@contextlib.contextmanager
def registry_process(
    bootstrap: str,
    topic: str,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    ready_timeout_s: float = 60.0,
) -> Iterator[RegistryProcess]:
    """Start ``python -m flightrec.testing.registry``, yield once it answers, SIGTERM it after."""
    with tempfile.TemporaryDirectory(prefix="registry-") as tmp:
        log_path = Path(tmp) / "registry.log"
        argv = [
            sys.executable,
            "-m",
            "flightrec.testing.registry",
            "--bootstrap-servers",
            bootstrap,
            "--port",
            str(port),
            "--host",
            host,
            "--topic",
            topic,
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        handle: RegistryProcess | None = None
        try:
            url = _wait_ready(proc, log_path, ready_timeout_s)
            handle = RegistryProcess(url=url, process=proc, log_path=log_path)
            yield handle
        finally:
            if handle is not None:
                handle.terminate()
            elif proc.poll() is None:
                proc.kill()
                proc.wait()
