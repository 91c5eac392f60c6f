"""The polling engine chosen by measurement on the replayed captures of real rigs
(`../shared/reference/miner-api`, served by sim.replay in a process of its own):
client CPU per poll and whether each engine's figures are the capture's, per family.

    python -m bench.corpus --polls 40

Engines: hashwatt's fast paths, pyasic 0.79 with kept miner objects, pyasic-rs (the
maintainers' Rust successor, `bench` extra) with kept miner objects. "Exact" compares the
headline figures (hashrate, expected hashrate, power, per-board hashrate) with the values
derived by hand in tests/cases/rigs/*/expected.toml.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import tomllib
import warnings
from pathlib import Path
from typing import Any

from collector.mapping import Origin, reading_from_miner
from collector.rigs import FIELDS
from collector.rigs.registry import fast_path_for, identify
from hashwatt.config import RigConfig
from hashwatt.contract import RigDoc

CASES = Path(__file__).resolve().parents[1] / "tests" / "cases" / "rigs"


def expected_cases() -> dict[str, dict[str, Any]]:
    """capture name -> the hand-derived expected reading."""
    out = {}
    for path in sorted(CASES.glob("*/expected.toml")):
        spec = tomllib.loads(path.read_text())
        out[spec["capture"]] = spec
    return out


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None or a == "null" or b == "null":
        return (a in (None, "null")) == (b in (None, "null"))
    return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))


def exact(spec: dict[str, Any], hashrate: Any, expected: Any, power: Any,
          boards: list[Any]) -> bool:
    """The headline figures against the hand-derived ones."""
    want = spec["reading"]
    if not (_close(hashrate, want["hashrate_ths"])
            and _close(expected, want["expected_hashrate_ths"])):
        return False
    if want["power_source"] == "miner" and not _close(power, want["power_w"]):
        return False
    want_boards = [b["hashrate_ths"] for b in spec.get("boards", [])]
    return len(boards) == len(want_boards) and all(
        _close(g, w) for g, w in zip(boards, want_boards, strict=True))


async def _cpu(coro: Any) -> tuple[float, Any]:
    start = time.process_time()
    result = await coro
    return time.process_time() - start, result


async def hashwatt(ip: str, polls: int) -> tuple[float, RigDoc]:
    """CPU ms per fast-path poll and the last reading."""
    miner = await identify(ip, 5.0)
    path = fast_path_for(miner, 5.0)
    assert path is not None, ip
    origin = Origin(site="bench", collector="c1", rig=RigConfig(id="rig", address=ip), ts_ms=1)
    await path.telemetry()
    cpu, last = await _cpu(_repeat(lambda: path.telemetry(), polls))
    await path.close()
    return cpu * 1000 / polls, reading_from_miner(origin, last)


async def pyasic_kept(ip: str, polls: int) -> tuple[float, RigDoc]:
    """CPU ms per pyasic get_data (telemetry fields only) with a kept miner object."""
    miner = await identify(ip, 5.0)
    origin = Origin(site="bench", collector="c1", rig=RigConfig(id="rig", address=ip), ts_ms=1)
    await miner.get_data(include=FIELDS)
    cpu, last = await _cpu(_repeat(lambda: miner.get_data(include=FIELDS), polls))
    return cpu * 1000 / polls, reading_from_miner(origin, last)


async def rs_kept(ip: str, polls: int) -> tuple[float | None, Any]:
    """CPU ms per pyasic-rs get_data with a kept miner object (None: not identified)."""
    try:
        from pyasic_rs import MinerFactory
    except ImportError:
        return None, None
    miner = await MinerFactory().get_miner(ip)
    if miner is None:
        return None, None
    await miner.get_data()
    cpu, last = await _cpu(_repeat(lambda: miner.get_data(), polls))
    return cpu * 1000 / polls, last


async def _repeat(make: Any, times: int) -> Any:
    last = None
    for _ in range(times):
        last = await make()
    return last


def _rs_figures(data: Any) -> tuple[Any, Any, Any, list[Any]]:
    def th(rate: Any) -> Any:
        return None if rate is None else round(float(rate.value), 6)
    boards = [th(b.hashrate) for b in data.hashboards]
    return th(data.hashrate), th(data.expected_hashrate), data.wattage, boards


def _figures(r: RigDoc) -> tuple[Any, Any, Any, list[Any]]:
    power = r["power_w"] if r.get("power_source") == "miner" else None
    return (r["hashrate_ths"], r["expected_hashrate_ths"], power,
            [b["hashrate_ths"] for b in r["boards"]])


async def measure(rigs: list[tuple[str, str]], polls: int) -> list[dict[str, Any]]:
    """One row per replayed capture."""
    cases, rows = expected_cases(), []
    for name, ip in rigs:
        spec = cases[name]
        hw_ms, hw = await hashwatt(ip, polls)
        py_ms, py = await pyasic_kept(ip, polls)
        rs_ms, rs = await rs_kept(ip, polls)
        rows.append({"capture": name, "hashwatt_ms": hw_ms, "hashwatt_exact":
                     exact(spec, *_figures(hw)), "pyasic_ms": py_ms,
                     "pyasic_exact": exact(spec, *_figures(py)), "rs_ms": rs_ms,
                     "rs_exact": None if rs is None else exact(spec, *_rs_figures(rs))})
    return rows


def table(rows: list[dict[str, Any]], polls: int) -> str:
    """The rows as text."""
    def ms(v: float | None) -> str:
        return "   n/a" if v is None else f"{v:6.2f}"

    def ok(v: bool | None) -> str:
        return "not identified" if v is None else ("exact" if v else "differs")

    lines = [f"replayed captures, client CPU ms per poll ({polls} polls each, LAN segments)",
             f"{'capture':<22}{'hashwatt':>9} {'':<8}{'pyasic':>8} {'':<8}{'pyasic-rs':>10} "]
    for r in rows:
        lines.append(f"{r['capture']:<22}{ms(r['hashwatt_ms']):>9} {ok(r['hashwatt_exact']):<8}"
                     f"{ms(r['pyasic_ms']):>8} {ok(r['pyasic_exact']):<8}{ms(r['rs_ms']):>10} "
                     f"{ok(r['rs_exact'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Replay the corpus in a child process and measure every engine on it."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polls", type=int, default=40)
    parser.add_argument("--base", default="127.76.0")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    ready = Path(tempfile.mkdtemp(prefix="hashwatt-corpus-")) / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "sim.replay", f"--base={args.base}",
                             f"--ready-file={ready}"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the replay server did not start")
            time.sleep(0.1)
        rigs = [(n, ip) for n, ip in (line.split() for line in ready.read_text().splitlines())]
        print(table(asyncio.run(measure(rigs, args.polls)), args.polls))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
