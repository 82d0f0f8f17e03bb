"""A `flywheel review` process on loopback, and a headless Chromium driven through WebDriver."""

from __future__ import annotations

import http.cookiejar
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from flywheel_assets.collector.server import free_port

CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
)


@dataclass
class RunningReview:
    url: str
    process: subprocess.Popen

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: a graceful stop, which publishes the spooled annotations."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=timeout)

    def get(self, path: str, *, token: str | None = None, opener=None) -> tuple[int, str]:
        return self._send(urllib.request.Request(self.url + path), token, opener)

    def post(
        self, path: str, form: dict, *, token: str | None = None, opener=None
    ) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST")
        return self._send(request, token, opener)

    def _send(self, request, token, opener) -> tuple[int, str]:
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Accept", "text/html")
        try:
            with (opener or _no_redirects()).open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _no_redirects():
    return urllib.request.build_opener(_NoRedirect)


def session_opener():
    """An opener that keeps cookies and follows redirects, like a browser without scripts."""
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )


def start_review(
    *, lake: Path, landing: Path, operators: str, producers: str, log: Path
) -> RunningReview:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_HOME"))}
    env.update(FLYWHEEL_OPERATOR_TOKENS=operators, FLYWHEEL_COLLECTOR_TOKENS=producers)
    cmd = [sys.executable, "-m", "flywheel_assets.cli", "review", "--port", str(port)]
    cmd += ["--lake", str(lake), "--landing", str(landing), "--max-file-seconds", "0.5"]
    out = open(log, "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    review = RunningReview(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"flywheel review exited with {process.returncode}: see {log}")
        try:
            with urllib.request.urlopen(f"{review.url}/healthz", timeout=1):
                return review
        except OSError:
            time.sleep(0.2)
    review.stop()
    raise RuntimeError("flywheel review did not answer /healthz within 60 s")


def chrome(width: int = 1280, height: int = 900):
    """A headless Chromium under Debian's chromedriver (no driver download)."""
    if CHROMEDRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("chromedriver is not installed (.ci/run installs chromium-driver)")
        pytest.skip("chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
