"""The collector host's clock steps back an hour (a bad RTC after a reboot, an NTP step):
readings are stamped an hour earlier than the ones already spooled, in the same spool with
the same epoch and rising seqs, and every one is stored exactly once.

The step is made with libfaketime (Debian's faketime) for the collector process alone: the
machine's clock is shared and not ours to step. libfaketime 0.9.10 here cannot step
CLOCK_REALTIME under a running process while leaving CLOCK_MONOTONIC alone (Python's
time.sleep then fails with EINVAL), so the step happens across a restart: a collector
SIGKILLed with readings in its spool comes back an hour behind, later with the clock set
right again. Inside a running collector only timestamps would change: scheduling, the
resend timer and paho's keep-alive use time.monotonic (collector/service.py,
collector/publisher.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import FarmFactory, wait_for
from tests.test_reliability import INTERVAL, RIGS, drill, report

pytestmark = pytest.mark.e2e
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def test_a_clock_stepped_back_an_hour_loses_and_doubles_nothing(
        tmp_path: Path, farm: FarmFactory) -> None:
    if not LIBFAKETIME.exists():
        pytest.skip("needs Debian's faketime (libfaketime)")
    behind = {**os.environ, "LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": "-1h"}
    with drill(tmp_path, farm) as d:
        d.bridge()
        first = d.collector()
        assert wait_for(lambda: len(d.polled()) >= 2 * RIGS, timeout=60)
        d.broker.stop()  # readings pile up in the spool while the clock goes wrong
        time.sleep(INTERVAL)
        first.send_signal(signal.SIGKILL)
        first.wait()
        spooled = d.spool_depth()
        newest = max(ts for _, ts in d.polled())
        second = d.collector(env=behind)
        assert wait_for(lambda: any(ts < newest - 3_000_000 for _, ts in d.polled()), 60)
        d.broker.start()
        time.sleep(2 * INTERVAL)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
        third = d.collector()  # the clock set right again
        count = len(d.polled())
        assert wait_for(lambda: len(d.polled()) >= count + 2 * RIGS, timeout=60)
        v = d.conclude(third)
        stamps = sorted(ts for _, ts in d.polled())
        back = sum(1 for _, ts in d.polled() if ts < newest - 3_000_000)
        report("clock stepped back an hour", f"{spooled} readings spooled at the step, "
                                             f"{back} taken an hour behind; {v.line()}")
        assert v.ok(), v.line()
        assert back >= RIGS and stamps[0] < newest - 3_000_000
