"""Rig polling benchmark: client CPU per poll for pyasic used naively, pyasic with kept miner
objects, pyasic-rs (the maintainers' Rust successor) likewise, and hashwatt's collector (fast
paths, every reading spooled), against a simulated farm in its own process.

    python -m bench.rigs --rigs 2000 --sample 200

CPU is this process's (time.process_time, all threads: pyasic-rs works on Rust threads);
the simulator's is never counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from pyasic import get_miner

from collector.publisher import Publisher
from collector.rigs import PyasicSource
from collector.rigs.antminer import ERRORS_EVERY
from collector.service import run_cycle
from hashwatt.config import CollectorConfig, Config, MqttConfig, RigConfig, SiteConfig
from sim.farm import DEFAULT_MIX, build_rigs
from sim.launch import Mosquitto

ANTMINER = ("s19pro", "s21")


def start_farm(count: int, base: str, run_dir: Path) -> subprocess.Popen[bytes]:
    """The simulated farm in a process of its own."""
    ready = run_dir / "farm.ready"
    proc = subprocess.Popen([sys.executable, "-m", "hashwatt.cli", "simulate",
                             f"--rigs={count}", f"--base={base}", "--frozen",
                             "--delivery=lan",  # replies in 1460-byte segments, as on a LAN
                             f"--ready-file={ready}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the simulated farm did not start")
        time.sleep(0.1)
    return proc


async def _cpu(coro: Any) -> tuple[float, Any]:
    start = time.process_time()
    result = await coro
    return time.process_time() - start, result


async def naive(ips: list[str]) -> float:
    """Identify and poll every rig every cycle, all data (what pyasic_to_influx does)."""
    async def one(ip: str) -> None:
        miner = await get_miner(ip)
        if miner is not None:  # pyasic's 3 s identification can time out on a busy machine
            await miner.get_data()

    cpu, _ = await _cpu(asyncio.gather(*(one(ip) for ip in ips)))
    return cpu * 1000 / len(ips)


async def kept(ips: list[str]) -> float:
    """Identify once (not counted), then poll all data with the kept objects."""
    found = await asyncio.gather(*(get_miner(ip) for ip in ips))
    for i, miner in enumerate(found):  # a probe that timed out on a busy machine: once more
        found[i] = miner if miner is not None else await get_miner(ips[i])
    miners = [m for m in found if m is not None]
    await asyncio.gather(*(m.get_data() for m in miners))  # warm-up
    cpu, _ = await _cpu(asyncio.gather(*(m.get_data() for m in miners)))
    return cpu * 1000 / len(miners)


# what the telemetry needs; pyasic-rs reads the rest only when asked
RS_UNNEEDED = ("ApiVersion", "BestShare", "ControlBoardVersion", "DevFeeConnected", "Hostname",
               "Ip", "LightFlashing", "Mac", "Pools", "SchemaVersion", "SerialNumber",
               "SessionBestShare", "TuningCapabilities", "TuningPercent", "TuningTarget",
               "Timestamp", "OperatingState")


async def rs_naive(ips: list[str]) -> float:
    """pyasic-rs: identify and poll every rig every cycle, all data."""
    from pyasic_rs import MinerFactory

    factory = MinerFactory()

    async def one(ip: str) -> None:
        miner = await factory.get_miner(ip)
        assert miner is not None, ip
        await miner.get_data()

    cpu, _ = await _cpu(asyncio.gather(*(one(ip) for ip in ips)))
    return cpu * 1000 / len(ips)


async def rs_kept(ips: list[str], lean: bool = False) -> float:
    """pyasic-rs with kept miner objects; lean: only the fields the telemetry needs."""
    from pyasic_rs import MinerFactory
    from pyasic_rs.data import DataField

    factory = MinerFactory()
    found = await asyncio.gather(*(factory.get_miner(ip) for ip in ips))
    miners = [m for m in found if m is not None]
    assert len(miners) == len(ips), "pyasic-rs did not identify every rig"
    exclude = [getattr(DataField, name) for name in RS_UNNEEDED] if lean else None
    await asyncio.gather(*(m.get_data(exclude=exclude) for m in miners))  # warm-up
    cpu, _ = await _cpu(asyncio.gather(*(m.get_data(exclude=exclude) for m in miners)))
    return cpu * 1000 / len(ips)


async def hashwatt(rigs: list[RigConfig], concurrency: int, broker_port: int,
                   run_dir: Path) -> dict[str, float]:
    """The collector's cycle, every reading spooled and published to a real mosquitto:
    identification not counted, then a full measured cycle until the broker acked it all."""
    cfg = Config(site=SiteConfig(name="bench"), rigs=rigs, mqtt=MqttConfig(port=broker_port),
                 collector=CollectorConfig(concurrency=concurrency, deadline_s=10,
                                           interval_s=30, id=f"bench{len(rigs)}",
                                           spool_path=run_dir / f"spool-{len(rigs)}.db"))
    source = PyasicSource(timeout_s=10)
    publisher = Publisher(cfg)
    await asyncio.to_thread(publisher.start, 30)
    try:
        await run_cycle(cfg, source, publisher.publish_reading)  # identification + first poll
        await asyncio.to_thread(publisher.drain, 60)
        start, cpu_start = time.perf_counter(), time.process_time()
        # ERRORS_EVERY cycles: the Antminer's web error list is read once in that many polls
        for _ in range(ERRORS_EVERY):
            stats = await run_cycle(cfg, source, publisher.publish_reading)
            assert stats["rigs_ok"] == len(rigs), stats
        wall = (time.perf_counter() - start) / ERRORS_EVERY
        assert await asyncio.to_thread(publisher.drain, 60), "the broker did not ack it all"
        cpu = (time.process_time() - cpu_start) / ERRORS_EVERY
    finally:
        await asyncio.to_thread(publisher.stop)
    assert stats["rigs_ok"] == len(rigs), stats
    return {"cpu_ms_per_rig": cpu * 1000 / len(rigs), "rigs_per_s": len(rigs) / wall,
            "cycle_s": wall}


def main(argv: list[str] | None = None) -> int:
    """Run the rig benchmark and print a table (or --json)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rigs", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=140, help="rigs polled by pyasic runs")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--base", default="127.70.0.0")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--memory-only", action="store_true",
                        help="only hashwatt's cycle: resident memory with the whole inventory")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    run_dir = Path(tempfile.mkdtemp(prefix="hashwatt-bench-"))
    farm, broker = start_farm(args.rigs, args.base, run_dir), Mosquitto(run_dir).start()
    try:
        result = asyncio.run(measure(args, broker.port, run_dir))
    finally:
        broker.stop()
        farm.terminate()
        farm.wait(timeout=30)
    if args.memory_only:
        allr = result["hashwatt_all"]
        print(f"collector with {args.rigs} rigs: cycle {allr['cycle_s']:.1f} s, "
              f"{allr['cpu_ms_per_rig']:.2f} CPU ms per rig, peak RSS {result['rss_mb']:.0f} MB")
        return 0
    print(json.dumps(result) if args.json else table(result))
    return 0


async def measure(args: argparse.Namespace, broker_port: int, run_dir: Path) -> dict[str, Any]:
    """Every measurement of one run."""
    sim = build_rigs(args.rigs, args.base, DEFAULT_MIX)
    rigs = [RigConfig(id=r.rig_id, address=r.ip) for r in sim]
    antminers = [r.ip for r in sim if r.hw_name in ANTMINER][:args.sample]
    mixed = [r.ip for r in sim][:args.sample]
    out: dict[str, Any] = {"rigs": args.rigs, "sample": args.sample}
    if not args.memory_only:
        for name, ips in (("antminer", antminers), ("mixed", mixed)):
            out[f"naive_{name}_ms"] = await naive(ips)
            out[f"kept_{name}_ms"] = await kept(ips)
            out[f"rs_naive_{name}_ms"] = await rs_naive(ips)
            out[f"rs_kept_{name}_ms"] = await rs_kept(ips)
            out[f"rs_lean_{name}_ms"] = await rs_kept(ips, lean=True)
        ant_rigs = [r for r, s in zip(rigs, sim, strict=True)
                    if s.hw_name in ANTMINER][:args.sample]
        out["hashwatt_antminer"] = await hashwatt(ant_rigs, args.concurrency, broker_port,
                                                  run_dir)
    out["hashwatt_all"] = await hashwatt(rigs, args.concurrency, broker_port, run_dir)
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def table(r: dict[str, Any]) -> str:
    """The results as text with the ratios."""
    ant, allr = r["hashwatt_antminer"], r["hashwatt_all"]
    cores_10k = allr["cpu_ms_per_rig"] * 10_000 / 1000 / 30
    return "\n".join([
        f"rig poll benchmark: {r['rigs']} simulated rigs (7 models), pyasic runs on "
        f"{r['sample']} rigs",
        f"{'client CPU ms per rig poll':<44}{'Antminer':>10}{'mixed':>10}",
        f"{'pyasic naive (identify + get_data)':<44}{r['naive_antminer_ms']:>10.2f}"
        f"{r['naive_mixed_ms']:>10.2f}",
        f"{'pyasic with kept miner objects':<44}{r['kept_antminer_ms']:>10.2f}"
        f"{r['kept_mixed_ms']:>10.2f}",
        f"{'pyasic-rs naive (identify + get_data)':<44}{r['rs_naive_antminer_ms']:>10.2f}"
        f"{r['rs_naive_mixed_ms']:>10.2f}",
        f"{'pyasic-rs with kept miner objects':<44}{r['rs_kept_antminer_ms']:>10.2f}"
        f"{r['rs_kept_mixed_ms']:>10.2f}",
        f"{'pyasic-rs kept, only the needed fields':<44}{r['rs_lean_antminer_ms']:>10.2f}"
        f"{r['rs_lean_mixed_ms']:>10.2f}",
        f"{'hashwatt collector (fast paths, spooled, sent)':<44}{ant['cpu_ms_per_rig']:>10.2f}"
        f"{allr['cpu_ms_per_rig']:>10.2f}",
        f"ratio hashwatt / naive (Antminer): 1/"
        f"{r['naive_antminer_ms'] / ant['cpu_ms_per_rig']:.1f}",
        f"ratio hashwatt / kept (Antminer): 1/{r['kept_antminer_ms'] / ant['cpu_ms_per_rig']:.1f}",
        f"ratio hashwatt / pyasic-rs kept (Antminer): "
        f"{ant['cpu_ms_per_rig'] / r['rs_kept_antminer_ms']:.2f}",
        f"hashwatt full cycle: {r['rigs']} rigs in {allr['cycle_s']:.2f} s "
        f"({allr['rigs_per_s']:.0f} rigs/s, simulator on the same 2 cores)",
        f"projection: 10,000 rigs every 30 s need {cores_10k:.2f} cores of collector CPU",
        f"peak RSS of this process: {r['rss_mb']:.0f} MB"])


if __name__ == "__main__":
    sys.exit(main())
