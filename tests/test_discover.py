"""`hashwatt discover` against a simulated farm on a loopback /28: what it writes, and what it
reports against an existing inventory (new, moved, replaced, missing)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from hashwatt.config import RigConfig
from hashwatt.discover import Found, addresses, reconcile
from tests.conftest import FarmFactory

pytestmark = pytest.mark.e2e


def mac(ip: str) -> str:
    """The simulated farm's MAC: 02:48:57 then the last three octets in hex (sim/vendors.py)."""
    return "02:48:57:" + ":".join(f"{int(o):02X}" for o in ip.split(".")[1:])


def test_discover_writes_the_inventory_and_reconciles_an_existing_one(
        tmp_path: Path, farm: FarmFactory) -> None:
    f = farm(5, mix=("s19pro", "m50", "a1246", "supra", "s21"))
    net = f.rigs[0].ip.rsplit(".", 1)[0]
    ip = {r.rig_id: r.ip for r in f.rigs}
    existing = tmp_path / "inventory.csv"
    existing.write_text(
        "ID;Address;Rack;Customer;MAC\n"
        f"r01-s01;{ip['r01-s01']};R01;acme;\n"                    # known by address
        f"r01-s02;{ip['r01-s02']};R01;acme;02:48:57:00:00:99\n"   # another machine there now
        f"old-s03;{net}.9;R02;blockfarm;{mac(ip['r01-s03'])}\n"   # moved: same MAC, new address
        f"gone-1;{net}.12;R02;blockfarm;\n")                      # nothing answers there
    out = tmp_path / "new.csv"
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "discover", f"{net}.0/28",
                          "--inventory", str(existing), "--output", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = run.stderr.splitlines()
    assert report[:-1] == [
        # the Bitaxe and the S19/S21 firmware give a hostname (the sim's rig id); the Avalon
        # does not, so the moved rig keeps its inventory id
        f"new      r01-s04 {ip['r01-s04']} BitAxe Supra mac {mac(ip['r01-s04'])}",
        f"new      r01-s05 {ip['r01-s05']} AntMiner S21 mac {mac(ip['r01-s05'])}",
        f"moved    old-s03 {net}.9 -> {ip['r01-s03']} (same MAC {mac(ip['r01-s03'])})",
        f"replaced r01-s02 {ip['r01-s02']} answers with MAC {mac(ip['r01-s02'])}, the "
        "inventory says 02:48:57:00:00:99",
        f"missing  gone-1 {net}.12 (no answer; kept in the inventory)",
    ]
    assert report[-1].startswith("discover: 14 addresses in ")
    assert report[-1].endswith(": 5 rigs answered, 2 new, 1 moved, 1 replaced, 1 missing, 0 "
                               "unknown")
    rows = list(csv.DictReader(out.open()))
    assert [(r["id"], r["address"], r["make"], r["model"], r["mac"], r["rack"], r["customer"])
            for r in rows] == [
        ("r01-s01", ip["r01-s01"], "AntMiner", "S19 Pro", mac(ip["r01-s01"]), "R01", "acme"),
        ("r01-s02", ip["r01-s02"], "WhatsMiner", "M50 VH50", mac(ip["r01-s02"]), "R01", "acme"),
        ("old-s03", ip["r01-s03"], "AvalonMiner", "Avalon 1246", mac(ip["r01-s03"]), "R02",
         "blockfarm"),
        ("r01-s04", ip["r01-s04"], "BitAxe", "Supra", mac(ip["r01-s04"]), "", ""),
        ("r01-s05", ip["r01-s05"], "AntMiner", "S21", mac(ip["r01-s05"]), "", ""),
        ("gone-1", f"{net}.12", "", "", "", "R02", "blockfarm"),
    ]
    # the stock Antminer web API gives a serial number; firmware versions as the rigs say
    assert rows[0]["serial"] == "SIMr01-s01" and rows[1]["firmware"] == "20230803.11.REL"
    # what discover writes, check-config reads
    cfg = tmp_path / "hashwatt.toml"
    cfg.write_text('[site]\nname = "north"\n[inventory]\ncsv = "new.csv"\n')
    check = subprocess.run([sys.executable, "-m", "hashwatt.cli", "check-config", str(cfg)],
                           capture_output=True, text=True, timeout=60)
    assert check.stdout.startswith(f"{cfg}: ok: site north, 6 rigs"), check.stderr


def test_networks_are_expanded_once_and_bad_ones_named() -> None:
    assert addresses(["10.0.0.0/30", "10.0.0.2", "10.0.0.1/32"]) == ["10.0.0.1", "10.0.0.2"]
    from hashwatt.discover import DiscoverError

    with pytest.raises(DiscoverError, match=r"'10\.0\.0\.0/33' is not a network"):
        addresses(["10.0.0.0/33"])


def test_two_rigs_never_take_one_inventory_row() -> None:
    known = [RigConfig(id="a", address="10.0.0.1", mac="02:00:00:00:00:01")]
    found = [Found(address="10.0.0.1", mac="02:00:00:00:00:01"),
             Found(address="10.0.0.2", mac="02:00:00:00:00:01")]
    result = reconcile(found, known)
    assert [r["id"] for r in result.rows] == ["a", "rig-10-0-0-2"]


def test_progress_without_a_terminal_is_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from hashwatt.progress import Progress

    caplog.set_level(logging.INFO, logger="hashwatt")
    with Progress("discover", 4, "addresses", every_s=0, terminal=False) as progress:
        progress.advance(note="0 rigs")
        progress.advance(3, note="2 rigs")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "discover: 1/4 addresses (25 %) after 0 s, 0 rigs"
    assert lines[1] == "discover: 4/4 addresses (100 %) after 0 s, 2 rigs"


def test_a_terminal_gets_a_progress_bar() -> None:
    # rich draws on a real terminal only: run under a pseudo-terminal
    import os
    import pty

    code = ("from hashwatt.progress import Progress\n"
            "with Progress('backfill', 3, 'days', terminal=True) as p:\n"
            "    p.advance(3, note='9 rows')\n")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", code])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert "backfill" in text and "3/3" in text and "9 rows" in text and "━" in text


def test_backfill_runs_day_by_day_against_influxdb(tmp_path: Path, influx_db) -> None:
    cfg = tmp_path / "hashwatt.toml"
    cfg.write_text(f'[site]\nname = "north"\ntimezone = "Europe/Berlin"\n[influxdb]\n'
                   f'url = "{influx_db.client.base_url}"\ndatabase = "{influx_db.database}"\n')
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "rollup", str(cfg),
                          "--backfill", "2026-10-01", "2026-10-04"], capture_output=True,
                         text=True, timeout=120)
    assert (run.returncode, run.stdout) == (0, "ledger: 0 quarter-hour rows written\n"), run.stderr
    bad = subprocess.run([sys.executable, "-m", "hashwatt.cli", "rollup", str(cfg),
                          "--backfill", "2026-10-04", "2026-10-01"], capture_output=True,
                         text=True, timeout=60)
    assert (bad.returncode, bad.stderr) == (2, "error: --backfill 2026-10-04 2026-10-01: FROM "
                                               "must be before TO\n")


@pytest.mark.parametrize("written", ["02:48:57:ab:00:03", "02-48-57-AB-00-03", "024857ab0003",
                                     "0248.57ab.0003", " 02:48:57:AB:00:03 "])
def test_a_mac_matches_however_it_is_written(written: str) -> None:
    from hashwatt.discover import normalise_mac

    assert normalise_mac(written) == "02:48:57:AB:00:03"
    known = [RigConfig(id="a", address="10.0.0.9", mac=written)]
    result = reconcile([Found(address="10.0.0.3", mac="02:48:57:AB:00:03")], known)
    assert [(r["id"], old) for r, old in result.moved] == [("a", "10.0.0.9")]


# What each simulated family answers, as its sim/vendors/<family>.py serves it: pyasic's make,
# the model, the firmware version (Antminer `CompileTime`, Whatsminer `FW`/`OLD_API`, cgminer
# `4.11.1` of the Avalons, AxeOS `version`, FluxOS `FW`, Braiins `25.07`, ePIC's `PowerPlay-BMS
# v1.5.13`, LuxOS `VERSION`, VNish `VNISH`), and whether it gives a hostname (then the id).
EVERY_FAMILY = {
    "a1246": ("AvalonMiner", "Avalon 1246", "4.11.1", False),
    "at2880": ("Auradine", "AT2880", "FluxOS_v1.4.0", True),
    "avalonq": ("AvalonMiner", "Avalon Q Home", "4.11.1", False),
    "bosplus": ("AntMiner", "S19j Pro", "25.07", True),
    "epic": ("AntMiner", "S19 XP", "1.5.13", True),
    "gamma": ("BitAxe", "Gamma", "v2.4.5", True),
    # LuxOS: pyasic 0.79's _get_mac returns None before parsing (luxminer.py): discover reads
    # `config` MACAddr itself
    "luxos": ("AntMiner", "S19k Pro", "2025.4.8.220305", False),
    "m30splus": ("WhatsMiner", "M30S+ VE40", "20220915.22.REL", True),
    "m50": ("WhatsMiner", "M50 VH50", "20230803.11.REL", True),
    # Whatsminer API v3: pyasic 0.79 reads no firmware version from it (reported as partial)
    "m60s": ("WhatsMiner", "M60S VK40", "", True),
    "s19pro": ("AntMiner", "S19 Pro", "Tue Dec  6 16:12:30 CST 2022", True),
    "s21": ("AntMiner", "S21", "Tue Dec  6 16:12:30 CST 2022", True),
    "supra": ("BitAxe", "Supra", "v2.4.5", True),
    "vnish": ("AntMiner", "S21+", "1.2.6", True),
}


class _Nginx(__import__("http.server").server.BaseHTTPRequestHandler):
    """A web server that is no miner (a switch's or a camera's UI on the miners' subnet)."""

    server_version, sys_version = "nginx/1.24.0", ""

    def do_GET(self) -> None:
        body = b"<html><head><title>Welcome to nginx!</title></head></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


class _LockedAntminer(_Nginx):
    """A stock Antminer web UI whose password the site changed: only a 401 with its realm."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Digest realm="antMiner Configuration", '
                                             'nonce="1", qop="auth"')
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_discover_every_family_and_what_is_not_a_rig(tmp_path: Path, farm: FarmFactory) -> None:
    import http.server
    import socket
    import threading
    import time

    from hashwatt.discover import COLUMNS
    from sim.model import Scenario

    mix = tuple(EVERY_FAMILY)
    n = len(mix)
    # four more rigs: hung, slowloris, garbage and truncated replies after identification
    ids = [f"r{i // 10 + 1:02d}-s{i % 10 + 1:02d}" for i in range(n + 4)]
    hung, slow, garbage, truncated = ids[n:]
    f = farm(n + 4, mix=mix, scenarios={hung: Scenario.HUNG, slow: Scenario.TRICKLE,
                                        garbage: Scenario.GARBAGE,
                                        truncated: Scenario.TRUNCATED})
    net = f.rigs[0].ip.rsplit(".", 1)[0]
    servers = [http.server.ThreadingHTTPServer((f"{net}.200", 80), _Nginx),
               http.server.ThreadingHTTPServer((f"{net}.202", 80), _LockedAntminer)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ssh = socket.create_server((f"{net}.201", 4028))  # an SSH daemon moved onto 4028

    def banner() -> None:
        while True:
            try:
                conn, _ = ssh.accept()
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            except OSError:
                return
    threading.Thread(target=banner, daemon=True).start()
    started = time.monotonic()
    try:
        run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "discover", f"{net}.0/24",
                              "--concurrency", "16", "--output", str(tmp_path / "inv.csv")],
                             capture_output=True, text=True, timeout=180)
    finally:
        ssh.close()
        for server in servers:
            server.shutdown()
    took = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    ip = {r.rig_id: r.ip for r in f.rigs}
    rows = {r["address"]: r for r in csv.DictReader((tmp_path / "inv.csv").open())}
    for rig_id, family in zip(ids, mix, strict=False):
        make, model, firmware, named = EVERY_FAMILY[family]
        row = rows[ip[rig_id]]
        want_id = rig_id if named else "rig-" + ip[rig_id].replace(".", "-")
        assert (row["id"], row["make"], row["model"], row["firmware"], row["mac"]) == (
            want_id, make, model, firmware, mac(ip[rig_id])), family
    # (the extra rigs continue the mix: hung a1246, slow at2880, garbage avalonq, truncated
    # bosplus) the garbage rig answers identification and its MAC cleanly: found exactly
    assert (rows[ip[garbage]]["model"], rows[ip[garbage]]["mac"]) == ("Avalon Q Home",
                                                                      mac(ip[garbage]))
    # Braiins' truncated replies come after identification and the getters discover uses
    assert (rows[ip[truncated]]["model"], rows[ip[truncated]]["mac"]) == ("S19j Pro",
                                                                          mac(ip[truncated]))
    assert set(rows) == {*ip.values(), f"{net}.202"} - {ip[hung]}
    assert list(rows[ip[slow]]) == COLUMNS
    lines = run.stderr.splitlines()
    report = [line for line in lines if line.startswith(("partial", "unknown"))]
    assert report == [
        f"partial  r01-s10 {ip['r01-s10']}: firmware version not read: its replies were slow, "
        "refused or did not parse",
        f"partial  rig-{ip[slow].replace('.', '-')} {ip[slow]}: firmware version, MAC not "
        "read: its replies were slow, refused or did not parse",
        f"partial  rig-{net.replace('.', '-')}-202 {net}.202: model, firmware version, MAC not "
        "read: its web UI refuses the default login (pyasic took it for AntminerUnknown)",
        f"unknown  {ip[hung]}: port 4028 accepts connections but nothing answers: a hung rig? "
        "(not in the inventory)",
        f"unknown  {net}.200: no miner firmware pyasic knows: port 80 answers HTTP 200, server "
        "'nginx/1.24.0', title 'Welcome to nginx!' (not in the inventory)",
        f"unknown  {net}.201: no miner firmware pyasic knows: port 4028 sends 'SSH-2.0-OpenSSH_"
        "9.2p1 Debian-2' by itself, no miner API does (not in the inventory)"]
    # the family rigs, the slow, garbage and truncated ones, and the locked Antminer
    assert lines[-1].endswith(f": {n + 4} rigs answered, {n + 4} new, 0 moved, 0 replaced, 0 "
                              "missing, 3 unknown")
    # bounded: a hung rig costs at most 4 x timeout + 5 s, a slowloris the same per request
    assert took < 90, took


def test_discover_holds_at_most_concurrency_addresses_at_once() -> None:
    """Four hung rigs (4028 accepts, nothing answers) on a /29, `concurrency=2`: no more than
    two addresses are being talked to at any time (each address's span runs from its first
    to its last accepted connection, so a late close cannot blur it), and each costs at most
    the identification deadline."""
    import asyncio
    import socket
    import threading
    import time

    from hashwatt.discover import scan
    from tests.conftest import next_base

    net = next_base().rsplit(".", 2)[0] + ".0"
    spans: dict[str, list[float]] = {}
    socks = []
    for host in range(1, 5):
        sock = socket.create_server((f"{net}.{host}", 4028))
        socks.append(sock)

        def accept(sock: socket.socket = sock, address: str = f"{net}.{host}") -> None:
            held = []
            while True:
                try:
                    held.append(sock.accept()[0])  # kept open, never answered
                except OSError:
                    return
                spans.setdefault(address, []).append(time.monotonic())
        threading.Thread(target=accept, daemon=True).start()
    started = time.monotonic()
    try:
        found, unknown = asyncio.run(scan([f"{net}.0/29"], concurrency=2, timeout_s=0.5,
                                          terminal=False))
    finally:
        for sock in socks:
            sock.close()
    took = time.monotonic() - started
    assert found == [] and [u.address for u in unknown] == [f"{net}.{h}" for h in range(1, 5)]
    windows = [(min(t), max(t)) for t in spans.values()]
    assert len(windows) == 4
    busiest = max(sum(1 for a, b in windows if a <= at <= b) for at, _ in windows)
    assert busiest == 2
    # two rounds of two, each within 4 x timeout + 5 s (and the banner look after it)
    assert took < 2 * (4 * 0.5 + 5 + 2 * 0.5 + 1) + 5, took
