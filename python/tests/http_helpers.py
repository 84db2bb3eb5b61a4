"""A `perseus serve` for the tests, and talking JSON to it."""

import contextlib
import json
import pathlib
import re
import subprocess
import time
import urllib.request
from typing import Any, Iterator, Optional, Union


@contextlib.contextmanager
def serve(perseus_bin: str, db: pathlib.Path) -> Iterator[str]:
    """A `perseus serve` on a free loopback port with database `db`; yields its base URL."""
    server = subprocess.Popen([perseus_bin, "serve", "--listen", "127.0.0.1:0", "--db", str(db)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip().split(" ")[-1]  # http://127.0.0.1:PORT
    finally:
        server.terminate()
        server.wait(timeout=30)


def call(base: str, method: str, path: str, body: Optional[Union[bytes, Any]] = None,
         content_type: str = "application/json") -> Any:
    """One request; returns the decoded JSON reply (None for an empty one)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait_for_reports(base: str, job: int, count: int, timeout_s: float = 30) -> Any:
    """Polls GET /v1/jobs/JOB/report until it counts `count` iteration reports; returns it.
    Fails the test (AssertionError) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = call(base, "GET", f"/v1/jobs/{job}/report")
        if report["reports"] >= count:
            return report
        assert time.monotonic() < deadline, f"{report['reports']} of {count} reports arrived"
        time.sleep(0.05)


def metric(base: str, name: str, job: int) -> Optional[int]:
    """The value of `name{job="JOB"}` in /metrics (None if absent)."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as response:
        text = response.read().decode()
    found = re.search(rf'^{name}{{job="{job}"}} (\d+)$', text, re.MULTILINE)
    return None if found is None else int(found.group(1))
