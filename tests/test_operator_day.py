"""An operator's day on a simulated farm (60 rigs in `make test`; `make operator-day` runs the
300 the issue names, HASHWATT_OPERATOR_RIGS sets it), read from the collector's own log as the
operator reads it (`hashwatt collect CONFIG -v`, the real CLI, a real mosquitto with a password
file): one rig flaps, one waits in maintenance, one refuses our login, the broker goes and
comes back, one rig's pool is changed behind the site's back. The exact change lines are
asserted, each once; the cycle lines are one per cycle; no third-party line at -v; no seeded
secret in any line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from sim.launch import Mosquitto
from sim.model import Scenario
from tests.conftest import FarmFactory, wait_for, write_config

pytestmark = pytest.mark.e2e

MQTT_PASSWORD = "collector-pw-J8vq21"
VNISH_PASSWORD = "vnish-pw-not-the-rigs-X5"  # the rig keeps its default: our login is refused
RIGS = int(os.environ.get("HASHWATT_OPERATOR_RIGS", "60"))
# a loaded 2-core machine serves a few hundred simulated rigs slowly: deadlines that leave it
# room, or every rig reads "no reply" (what an operator would see too, if a real network were
# that slow)
INTERVAL_S, DEADLINE_S = (4, 3) if RIGS <= 100 else (20, 15)
OWN = ("collector", "hashwatt", "exporters")  # the loggers a -v run may print


def test_an_operators_day_in_the_log(tmp_path: Path, farm: FarmFactory) -> None:
    mix = ("s19pro", "m50", "a1246", "supra", "s21", "m30splus", "gamma", "vnish")
    flapper, parked, locked, hijacked = "r02-s05", "r03-s01", "r01-s08", "r04-s03"
    f = farm(RIGS, mix=mix, scenarios={parked: Scenario.OFFLINE})
    assert f.rig(locked).hw_name == "vnish" and f.rig(hijacked).hw_name == "s19pro"
    broker = Mosquitto(tmp_path / "broker", passwords={"collector": MQTT_PASSWORD}).start()
    path = write_config(tmp_path / "hashwatt.toml", mqtt_port=broker.port, rigs=f.rigs,
                        collector=f'id = "c1"\ninterval_s = {INTERVAL_S}\n'
                                  f"deadline_s = {DEADLINE_S}\nconcurrency = 100")
    text = path.read_text().replace(
        "[mqtt]\n", '[mqtt]\nusername = "collector"\npassword = { env = "HW_T_MQTT" }\n')
    text = text.replace(f'id = "{parked}"\n', f'id = "{parked}"\nmaintenance = true\n')
    text = text.replace(f'id = "{locked}"\n',
                        f'id = "{locked}"\nweb_password = {{ env = "HW_T_VNISH" }}\n')
    text += ('\n[pools]\nallowed = ["stratum+tcp://pool.example.net:*"]\n'
             "check_interval_s = 10\n")
    path.write_text(text)
    env = {**os.environ, "HW_T_MQTT": MQTT_PASSWORD, "HW_T_VNISH": VNISH_PASSWORD}
    proc = subprocess.Popen([sys.executable, "-m", "hashwatt.cli", "collect", str(path), "-v"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    lines: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")),
                              daemon=True)
    reader.start()
    control = f"http://127.0.0.1:{f.control_port}"

    def seen(text: str, timeout: float = 60) -> None:
        assert wait_for(lambda: any(text in line for line in lines), timeout), \
            f"{text!r} not logged:\n" + "".join(lines[-40:])

    def cycles() -> int:
        return sum(" INFO collector: cycle " in line for line in lines)

    try:
        seen(" INFO collector: cycle 1: ")
        httpx.post(f"{control}/rigs/{flapper}/scenario/offline")
        seen(f"rig {flapper} down: ")
        httpx.post(f"{control}/rigs/{flapper}/scenario/normal")
        seen(f"rig {flapper} up again")
        broker.stop(kill=True)
        seen(f"lost the broker 127.0.0.1:{broker.port}")
        time.sleep(1)
        broker.start()
        seen(f"broker 127.0.0.1:{broker.port} regained")
        httpx.post(f"{control}/rigs/{hijacked}/pool",
                   json={"url": "stratum+tcp://pool.elsewhere.example:3333",
                         "user": "thief.worker1"})
        seen(f"rig {hijacked} mines elsewhere", timeout=40)
        last = cycles()
        assert wait_for(lambda: cycles() >= last + 1, 40)  # nothing repeats cycle after cycle
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(10)
        broker.stop()
    assert proc.returncode == 0
    out = "".join(lines)
    for secret in (MQTT_PASSWORD, VNISH_PASSWORD):
        assert secret not in out
    # every line starts with a time, a level and a logger (a -v DEBUG line may carry a
    # traceback below it: those continuation lines belong to it)
    records = [(m.group(1), m.group(2), m.group(3)) for line in lines
               if (m := re.match(r"\d{4}-\d\d-\d\d [\d:,]+ (\w+) ([\w.]+): (.*)", line))]
    assert "Traceback" not in "".join(line for line in lines
                                      if " DEBUG " not in line and line[:1].isdigit())
    # -v after the subcommand: our DEBUG lines, and not one line of a library
    assert any(level == "DEBUG" for level, _, _ in records)
    assert {name for _, name, _ in records if not name.startswith(OWN)} == set()
    changes = [(level, text) for level, name, text in records
               if level != "DEBUG" and not text.startswith(("cycle ", "stopping: "))]
    # no bridge stores them here: every reading stays spooled, and the last line says so
    assert re.fullmatch(r"stopping: \d+ readings stay in the spool and go out after the next "
                        "start", records[-1][2])
    port = broker.port
    refused = next(text for _, text in changes if text.startswith(f"rig {locked} down: "))
    assert refused.startswith(f"rig {locked} down: login refused (")
    assert refused.endswith("): check the rig's credentials")
    offline = ("connection refused on 4028/80: rig off, rebooting or its miner software "
               "stopped")
    # the start: both lines, in either order (the broker's CONNACK races the first cycle)
    assert sorted(changes[:2]) == [("INFO", f"collector c1: {RIGS} rigs every {INTERVAL_S} s"),
                                   ("INFO", f"connected to broker 127.0.0.1:{port}")]
    assert changes[2:] == [
        ("INFO", f"rig {parked} down (maintenance): identification: no miner answered: "
                 f"{offline}"),
        ("INFO", refused),
        # the Bitaxe's web API (its fast path) fails to connect: probed like any silence
        ("INFO", f"rig {flapper} down: fast path: system/info: ConnectError: All connection "
                 f"attempts failed; pyasic read nothing: {offline}"),
        ("INFO", f"rig {flapper} up again"),
        ("WARNING", f"lost the broker 127.0.0.1:{port} (Unspecified error): readings wait in "
                    "the spool until it is back"),
        ("INFO", f"broker 127.0.0.1:{port} regained: spooled readings go out now"),
        ("WARNING", f"rig {hijacked} mines elsewhere: pool stratum+tcp://pool.elsewhere."
                    "example:3333 is not on the site's allow-list"),
    ], changes
    # one cycle line per cycle, numbered 1, 2, 3 ... with all the rigs
    numbers = [int(m.group(1)) for _, _, text in records
               if (m := re.match(rf"cycle (\d+): {RIGS} rigs: \d+ ok, \d+ failed, \d+ "
                                 r"timeout in [\d.]+ s", text))]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 4
