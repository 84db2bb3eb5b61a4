"""Launching small multi-process torch.distributed runs from the tests."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Dict, Optional


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(script: str, *args: str, nproc: int = 2, env: Optional[Dict[str, str]] = None,
             timeout: float = 600) -> "subprocess.CompletedProcess[str]":
    """Runs `script args` on `nproc` local ranks with torch.distributed.run; asserts it worked."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), script, *args]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-8000:]
    return run
