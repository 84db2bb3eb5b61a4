"""Slow and idle clients do not exhaust `perseus serve`; bodies are limited before being read.

Every connection is held by the server's event thread and a request reaches a worker only
once it has arrived in full, so 32 clients sending a header byte every 2 s (as many as the
server has workers) and 200 idle keep-alive connections leave a normal request answered.
"""

import json
import re
import socket
import threading
import urllib.error
import urllib.request
from typing import List

from http_helpers import call, serve


def slow_client(port: int, stop: threading.Event, opened: List[socket.socket]) -> None:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    opened.append(s)
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
        if stop.wait(2):
            return
        try:
            s.send(bytes([byte]))
        except OSError:
            return


def rejected(base: str) -> dict:
    with urllib.request.urlopen(base + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r'^perseus_http_rejected_total\{reason="(\w+)"\} (\d+)$', text,
                                 re.MULTILINE)}


def test_slow_and_idle_clients_leave_requests_answered(perseus_bin, tmp_path):
    with serve(perseus_bin, tmp_path / "db.sqlite") as base:
        port = int(base.rsplit(":", 1)[1])
        stop = threading.Event()
        opened: List[socket.socket] = []
        slow = [threading.Thread(target=slow_client, args=(port, stop, opened)) for _ in range(32)]
        try:
            for t in slow:
                t.start()
            opened += [socket.create_connection(("127.0.0.1", port), timeout=30)
                       for _ in range(200)]
            # Answered at all (no latency target: the generous timeout only ends a wedged test).
            assert call(base, "GET", "/healthz") == {"ok": True}
            job = call(base, "POST", "/v1/jobs", {"name": "busy", "stages": 2, "microbatches": 4,
                                                  "blocking_power_w": 80})
            assert job["job_id"] == 1
            assert call(base, "GET", "/v1/jobs/1")["state"] == "registering"
        finally:
            stop.set()
            for t in slow:
                t.join()
            for s in opened:
                s.close()


def test_a_body_over_the_limit_is_refused_from_its_content_length(perseus_bin, tmp_path):
    with serve(perseus_bin, tmp_path / "db.sqlite") as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            # 32 MB announced, none of it sent: the reply comes from the headers alone.
            s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 33554432\r\n\r\n")
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        head, body = reply.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 413 ")
        assert json.loads(body) == {
            "error": "request body of 33554432 bytes is larger than the limit of 8388608 bytes "
                     "for POST /v1/jobs"}
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 411 ")
        try:
            call(base, "GET", "/v1/nothing")
        except urllib.error.HTTPError as error:
            assert error.code == 404
        assert rejected(base) == {"body_too_large": 1, "length_required": 1, "no_route": 1}
