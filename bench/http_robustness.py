#!/usr/bin/env python3
"""Slow and idle clients against `perseus serve`, and the memory an invalid JSON body costs.

    bench/http_robustness.py PERSEUS_BIN [--slow 32] [--idle 200] [--body-mb 32]

Starts `PERSEUS_BIN serve` on a free loopback port (a fresh database in a
temporary folder), then:
  1. the time of one GET /healthz on a quiet server;
  2. opens --slow connections that each send one byte of a request header
     every 2 s and --idle connections that send nothing, waits 3 s, and times
     GET /healthz and POST /v1/jobs (a fresh connection each, 60 s timeout);
  3. closes those, sends a --body-mb MB body of `[` to POST /v1/jobs and reads
     the server's peak resident memory (VmHWM) before and after.
Prints one line per figure.
"""

import argparse
import json
import pathlib
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import List, Optional, Tuple


def peak_rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(base: str, method: str, path: str, body: Optional[bytes] = None,
          timeout: float = 60) -> Tuple[float, str]:
    """Seconds until the reply (or the failure), and its status or error."""
    start = time.monotonic()
    request = urllib.request.Request(base + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            outcome = str(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        outcome = str(error.code)
    except Exception as error:  # noqa: BLE001 - the failure is the measurement
        outcome = type(error).__name__ + ": " + str(error)
    return time.monotonic() - start, outcome


def slow_client(port: int, stop: threading.Event, sockets: List[socket.socket]) -> None:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return
    sockets.append(s)
    header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000
    for byte in header:
        if stop.wait(2):
            return
        try:
            s.send(bytes([byte]))
        except OSError:
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("perseus")
    parser.add_argument("--slow", type=int, default=32)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--body-mb", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [args.perseus, "serve", "--listen", "127.0.0.1:0", "--db", f"{tmp}/p.db"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert server.stdout is not None
            base = server.stdout.readline().strip().split(" ")[-1]
            port = int(base.rsplit(":", 1)[1])
            job = json.dumps({"stages": 2, "microbatches": 4}).encode()
            print(f"quiet: GET /healthz {timed(base, 'GET', '/healthz')}")
            stop = threading.Event()
            slow_sockets: List[socket.socket] = []
            threads = [threading.Thread(target=slow_client, args=(port, stop, slow_sockets))
                       for _ in range(args.slow)]
            for t in threads:
                t.start()
            idle = []
            for _ in range(args.idle):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                except OSError as error:
                    print(f"idle connection refused: {error}")
                    break
            time.sleep(3)
            print(f"{args.slow} slow + {len(idle)} idle: GET /healthz "
                  f"{timed(base, 'GET', '/healthz')}")
            print(f"{args.slow} slow + {len(idle)} idle: POST /v1/jobs "
                  f"{timed(base, 'POST', '/v1/jobs', job)}")
            print(f"{args.slow} slow + {len(idle)} idle: GET /healthz again "
                  f"{timed(base, 'GET', '/healthz')}")
            stop.set()
            for s in idle + slow_sockets:
                s.close()
            for t in threads:
                t.join()
            time.sleep(1)
            before = peak_rss_mb(server.pid)
            body = b"[" * (args.body_mb << 20)
            took, outcome = timed(base, "POST", "/v1/jobs", body)
            print(f"{args.body_mb} MB of '[' to POST /v1/jobs: {outcome} in {took:.2f} s, "
                  f"peak RSS {before:.0f} MB -> {peak_rss_mb(server.pid):.0f} MB")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
