"""`hashwatt demo --duration`: the whole chain, then a JSON summary read back from InfluxDB."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import next_base

pytestmark = pytest.mark.e2e


def test_the_demo_runs_the_chain_and_prints_a_summary_of_fifty_rigs(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "demo", "--duration", "15",
                          "--interval", "5", "--run-dir", str(tmp_path / "demo"),
                          "--base", next_base()],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["rigs_seen"] == 50
    # the demo farm has one rig switched off and one hung; the other 48 hash
    assert summary["rigs_online"] == 48
    # 5 racks of 10 rigs, one simulated PDU each: every rig's watts come from its outlet,
    # the two silent ones' too
    assert summary["pdus_reporting"] == 5 and summary["rigs_on_pdu_power"] == 50
    assert summary["points_stored"] >= 50 * 2
    assert summary["fleet_hashrate_ths"] > 3000 and summary["fleet_power_w"] > 100_000
    assert "online 48/50" in run.stderr


def test_the_demo_stops_cleanly_on_ctrl_c_and_leaves_no_process_behind(tmp_path: Path) -> None:
    run_dir = tmp_path / "demo-int"
    proc = subprocess.Popen([sys.executable, "-m", "hashwatt.cli", "demo", "--interval", "5",
                             "--run-dir", str(run_dir), "--base", next_base()],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("fleet"):
            break
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    left = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True)
    assert left.stdout == ""
