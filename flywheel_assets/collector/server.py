"""Start and stop a `flywheel collect` process on loopback, for the load test and the tests."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path


@dataclass
class RunningCollector:
    url: str
    token: str
    landing: Path
    process: subprocess.Popen

    def stop(self, *, kill: bool = False, timeout: float = 30) -> None:
        """SIGTERM (a graceful stop: queued records are published) or SIGKILL (a crash)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(timeout=timeout)

    def post(self, endpoint: str, body, *, token: str | None = None, headers: dict | None = None):
        """POST JSON (or raw bytes); returns (status, decoded JSON body)."""
        status, answer, _ = post_json(
            f"{self.url}{endpoint}", body, self.token if token is None else token, headers
        )
        return status, answer


def post_json(
    url: str, body, token: str, headers: dict | None = None
) -> tuple[int, object, Message]:
    """POST JSON (or raw bytes) with a bearer token; returns (status, JSON body, headers)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), exc.headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_collector(
    landing: Path,
    token: str,
    *extra_args: str,
    log: Path | None = None,
    port: int | None = None,
    max_file_bytes: int | None = None,
) -> RunningCollector:
    """`max_file_bytes` caps every file the process writes (RLIMIT_FSIZE): a write past it fails
    the way one on a full disk does, after writing what fits."""
    port = port or free_port()
    env = {**os.environ, "FLYWHEEL_COLLECTOR_TOKENS": token}
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the process

    def limit_file_size() -> None:
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, hard))

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flywheel_assets.cli",
            "collect",
            "--port",
            str(port),
            "--landing",
            str(landing),
            *extra_args,
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        # Python ignores SIGXFSZ, so a write past the cap fails with EFBIG instead of killing it.
        preexec_fn=limit_file_size if max_file_bytes else None,
    )
    collector = RunningCollector(f"http://127.0.0.1:{port}", token, landing, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the collector exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{collector.url}/healthz", timeout=1):
                return collector
        except OSError:
            time.sleep(0.1)
    collector.stop(kill=True)
    raise RuntimeError("the collector did not answer /healthz within 60 s")


def landed_records(landing: Path, stream: str) -> list[dict]:
    """Every record in the published landing files of a stream (lines end at b"\\n" only, as
    ingestion reads them: U+2028 and friends are characters inside a record)."""
    out = []
    for path in sorted((landing / stream).glob("*.jsonl")):
        out.extend(json.loads(line) for line in path.read_bytes().split(b"\n") if line)
    return out
