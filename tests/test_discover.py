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
    assert report[-1].endswith(": 5 rigs answered, 2 new, 1 moved, 1 replaced, 1 missing")
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
