"""PDU polling benchmark: hashwatt's SNMP source against net-snmp's snmpbulkwalk.

N simulated PDUs of 24 outlets (snmpsim, its own process, one loopback address each) are
read by both clients, the same profile columns in the same run. CPU is counted per client
process (ours: this process; snmpbulkwalk: its children), never the simulator's.

    python -m bench.pdu --pdus 200 --outlets 24 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from collector.pdu.profile import builtin_profiles
from collector.pdu.source import PduSource
from hashwatt.config import Config, PduConfig, SiteConfig
from hashwatt.contract import PduDoc
from sim.farm import rig_addresses
from sim.launch import SnmpSim, find_binary
from sim.pdus import static_recording

COMMUNITY = "bench"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _hashwatt_round(source: PduSource, pdus: list[PduConfig]) -> list[PduDoc]:
    return list(await asyncio.gather(*(source.poll(p, 1) for p in pdus)))


def bench_hashwatt(pdus: list[PduConfig], rounds: int, outlets: int) -> dict[str, float]:
    """CPU and wall time of this process polling every PDU, after one warm-up round."""
    source = PduSource(Config(site=SiteConfig(name="bench"), pdus=pdus))

    async def run() -> tuple[float, float]:
        await _hashwatt_round(source, pdus)  # engine start, profile lookups
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            readings = await _hashwatt_round(source, pdus)
            bad = [r for r in readings if not r["online"] or len(r["outlets"]) != outlets]
            if bad:
                raise SystemExit(f"hashwatt read {len(bad)} PDUs wrong: {bad[0]}")
        return time.process_time() - cpu0, time.perf_counter() - wall0

    cpu, wall = asyncio.run(run())
    polls = len(pdus) * rounds
    return {"cpu_ms_per_pdu": cpu * 1000 / polls, "wall_s_per_round": wall / rounds}


def bench_snmpbulkwalk(pdus: list[PduConfig], columns: list[str], reps: int) -> dict[str, float]:
    """snmpbulkwalk once per column per PDU (it walks one subtree per run)."""
    binary = find_binary("snmpbulkwalk")
    cpu0, wall0, values = _children_cpu(), time.perf_counter(), 0
    for pdu in pdus:
        for column in columns:
            out = subprocess.run([binary, "-v2c", "-c", COMMUNITY, f"-Cr{reps}", "-On", "-Oq",
                                  "-m", "", f"{pdu.address}:{pdu.port}", column],
                                 capture_output=True, text=True, check=True)
            values += len(out.stdout.splitlines())
    cpu, wall = _children_cpu() - cpu0, time.perf_counter() - wall0
    return {"cpu_ms_per_pdu": cpu * 1000 / len(pdus), "wall_s_per_round": wall,
            "values_per_pdu": values / len(pdus)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or --json)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdus", type=int, default=200)
    parser.add_argument("--outlets", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", default="127.60.0.0")
    parser.add_argument("--port", type=int, default=16100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    profile = builtin_profiles()["apc_rpdu2"]
    columns = sorted({c.oid for c in profile.columns()})
    run_dir = Path(tempfile.mkdtemp(prefix="hashwatt-bench-pdu-"))
    (run_dir / "data").mkdir()
    (run_dir / "data" / f"{COMMUNITY}.snmprec").write_text(static_recording(args.outlets))
    addresses = rig_addresses(args.base, args.pdus)
    agent = SnmpSim(run_dir, data_dir=run_dir / "data",
                    endpoints=tuple(f"{a}:{args.port}" for a in addresses)).start(timeout=120)
    pdus = [PduConfig(id=f"pdu-{i}", address=a, port=args.port, profile="apc_rpdu2",
                      community=SecretStr(COMMUNITY), timeout_s=5, retries=1)
            for i, a in enumerate(addresses)]
    try:
        ours = bench_hashwatt(pdus, args.rounds, args.outlets)
        theirs = bench_snmpbulkwalk(pdus, columns, profile.max_repetitions)
    finally:
        agent.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    result = {"pdus": args.pdus, "outlets": args.outlets, "columns": len(columns),
              "rounds": args.rounds, "hashwatt": ours, "snmpbulkwalk": theirs,
              "ratio_cpu": ours["cpu_ms_per_pdu"] / theirs["cpu_ms_per_pdu"]}
    print(json.dumps(result) if args.json else _table(result))
    return 0


def _table(r: dict[str, Any]) -> str:
    ours, theirs = r["hashwatt"], r["snmpbulkwalk"]
    return "\n".join([
        f"PDU poll benchmark: {r['pdus']} PDUs x {r['outlets']} outlets, {r['columns']} "
        f"columns, {r['rounds']} rounds",
        f"{'client':<34}{'CPU ms/PDU':>12}{'wall s/round':>14}",
        f"{'hashwatt (pysnmp, column GETBULK)':<34}{ours['cpu_ms_per_pdu']:>12.2f}"
        f"{ours['wall_s_per_round']:>14.2f}",
        f"{'snmpbulkwalk (one run per column)':<34}{theirs['cpu_ms_per_pdu']:>12.2f}"
        f"{theirs['wall_s_per_round']:>14.2f}",
        f"ratio hashwatt / snmpbulkwalk CPU: {r['ratio_cpu']:.2f}"])


if __name__ == "__main__":
    sys.exit(main())
