"""The README's deployment walkthrough, run literally by scripts/walkthrough.sh.

gpud (with the stand-in libnvidia-ml.so.1), perseus serve, a torch pipeline job
with the hook that creates its job, profiles itself in the training loop and
follows the plan with its clock changes going through gpud, then perseus report.
The GPUs are simulated; this checks that the steps as written work together.
"""

import json
import os
import pathlib
import subprocess
import sys

from conftest import BIN_DIR

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_the_deployment_walkthrough_runs_end_to_end(tmp_path):
    env = dict(os.environ, PERSEUS_BIN_DIR=str(BIN_DIR.resolve()), PYTHON=sys.executable)
    run = subprocess.run([str(REPO / "scripts" / "walkthrough.sh"), str(tmp_path)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["gpud"] == str(tmp_path / "gpud.sock")
    assert result["order_checked"] is True and result["mismatches"] == 0
    assert result["phases_per_rank"]["profiling"] > 0 and result["phases_per_rank"]["planned"] >= 3
    assert result["blocking_power"]["source"] == "measured"
    assert result["measured"]["model"]["saving_pct"] > 0
    assert "gpud set" in run.stderr and "holds no GPU now" in run.stderr
    report = (tmp_path / "report" / "report.html").read_text()
    assert "<svg" in report or "<table" in report
