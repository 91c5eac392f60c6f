"""The `hashwatt` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from hashwatt.config import Config, ConfigError, load_config

log = logging.getLogger("hashwatt")


def _load(path: str, role: str | None = None) -> Config:
    try:
        return load_config(path, role)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file without running anything."""
    cfg = _load(args.config)
    print(f"{args.config}: ok: site {cfg.site.name}, {len(cfg.rigs)} rigs, "
          f"influxdb {cfg.influxdb.api if cfg.influxdb else 'not configured'}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Create the InfluxDB 1.x database, retention policies and logins (idempotent)."""
    from hashwatt.setup import apply, plan

    cfg = _load(args.config, "influxdb")
    try:
        steps = apply(cfg.influxdb.url if cfg.influxdb else "",
                      plan(cfg, args.reader, args.ops_reader, args.retention))
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    for line in steps:
        print(f"ok: {line}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a simulated farm."""
    from hashwatt.sim.farm import (
        Farm,
        FarmError,
        build_rigs,
        pdus_toml,
        run_farm,
        write_inventory,
    )
    from hashwatt.sim.model import Scenario
    from hashwatt.sim.pdus import pdus_for

    scenarios = {}
    for item in args.scenario:
        rig_id, _, name = item.partition("=")
        scenarios[rig_id] = Scenario(name)
    rigs = build_rigs(args.rigs, args.base, tuple(args.mix.split(",")), scenarios)
    pdus = pdus_for(rigs) if args.pdus else []
    if args.write_inventory:
        write_inventory(rigs, Path(args.write_inventory), pdus)
    if args.write_pdus:
        Path(args.write_pdus).write_text(pdus_toml(pdus))
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="hashwatt-farm-"))
    farm = Farm(rigs, seed=args.seed, tick_s=args.tick, frozen=args.frozen, pdus=pdus,
                state_dir=state)
    ready = Path(args.ready_file) if args.ready_file else None
    try:
        _run_async(run_farm(farm, args.control_port, ready, args.duration))
    except FarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_workers(args: argparse.Namespace) -> int:
    """One collector process per shard, so every core polls; stop them all together."""
    import subprocess

    extra = [f"--cycles={args.cycles}"] if args.cycles else []
    procs = [subprocess.Popen([sys.executable, "-m", "hashwatt.cli", "collect", args.config,
                               f"--shard={i}/{args.workers}", *extra])
             for i in range(args.workers)]
    def stop_all() -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()

    _on_signals(stop_all)
    return max(p.wait() for p in procs)


def cmd_collect(args: argparse.Namespace) -> int:
    """Run the collector (or --workers processes over shards of the inventory)."""
    from collector.service import run_collector

    if args.workers > 1:
        return _run_workers(args)
    cfg = _load(args.config, "collector")
    if args.shard:
        from hashwatt.config import shard

        index, _, count = args.shard.partition("/")
        try:
            cfg = shard(cfg, int(index), int(count))
        except (ValueError, ConfigError) as exc:
            print(f"error: --shard {args.shard}: {exc}", file=sys.stderr)
            return 2
    _run_async(run_collector(cfg, cycles=args.cycles))
    return 0


def cmd_bridge(args: argparse.Namespace) -> int:
    """Run the MQTT → InfluxDB bridge."""
    from exporters.bridge import run_bridge

    cfg = _load(args.config, "bridge")
    stop = threading.Event()
    _on_signals(lambda: stop.set())
    ready = Path(args.ready_file) if args.ready_file else None

    def mark_ready() -> None:
        if ready is not None:
            ready.write_text("subscribed\n")

    run_bridge(cfg, stop, ready=mark_ready)
    return 0


def cmd_rollup(args: argparse.Namespace) -> int:
    """Write the hourly energy ledger (the last closed hours, or a backfill range)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from exporters.ledger import rollup

    cfg = _load(args.config, "influxdb")
    if args.backfill:
        zone = ZoneInfo(cfg.site.timezone)
        start, end = (dt.datetime.fromisoformat(d).replace(tzinfo=zone).timestamp()
                      for d in args.backfill)
    else:
        end = time.time() // 3600 * 3600
        start = end - args.hours * 3600
    rows = rollup(cfg, int(start), int(end))
    print(f"ledger: {rows} hourly rows written")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Print (or write) a monthly energy report."""
    from exporters.report import energy_report, render

    cfg = _load(args.config, "influxdb")
    report = energy_report(cfg, args.month, args.by)
    data = render(report, args.format, Path(args.output) if args.output else None)
    if not args.output:
        sys.stdout.buffer.write(data)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run mosquitto, influxd, a simulated farm, the collector and the bridge together."""
    from hashwatt.demo import run_demo

    return run_demo(rigs=args.rigs, duration=args.duration, run_dir=Path(args.run_dir),
                    interval=args.interval, seed=args.seed)


def _on_signals(handler: Callable[[], None]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: handler())


def _run_async(coro: Coroutine[Any, Any, None]) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="hashwatt", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("config")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("init", help="create the InfluxDB 1.x database, retention policies and "
                                    "logins (idempotent)")
    p.add_argument("config")
    p.add_argument("--reader", action="append", default=[], metavar="USER:ENVVAR",
                   help="a read-only login for Grafana (operations and ledger); the password "
                        "is read from ENVVAR")
    p.add_argument("--ops-reader", action="append", default=[], metavar="USER:ENVVAR",
                   help="a read-only login for the wall screen: operations only, no ledger")
    p.add_argument("--retention", default="8w", help="how long raw readings are kept")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("simulate", help="run a simulated farm on loopback addresses")
    p.add_argument("--rigs", type=int, default=50)
    p.add_argument("--base", default="127.10.0.0", help="rigs get the addresses after this")
    p.add_argument("--mix", default="s19pro,m50,a1246,s21,supra,m30splus,gamma")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tick", type=float, default=10.0, help="seconds between new readings")
    p.add_argument("--frozen", action="store_true", help="serve the same readings forever")
    p.add_argument("--scenario", action="append", default=[], metavar="RIG=SCENARIO")
    p.add_argument("--write-inventory", metavar="CSV")
    p.add_argument("--pdus", action="store_true",
                   help="one simulated SNMP PDU per rack, its outlets following the rigs")
    p.add_argument("--write-pdus", metavar="TOML", help="write [[pdus]] tables for the PDUs")
    p.add_argument("--state-dir", help="where the PDUs' agent keeps its files")
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--ready-file")
    p.add_argument("--duration", type=float)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("collect", help="poll rigs and publish readings over MQTT")
    p.add_argument("config")
    p.add_argument("--cycles", type=int, help="stop after this many cycles")
    p.add_argument("--shard", metavar="I/N",
                   help="poll only shard I of N of the inventory (run N collectors)")
    p.add_argument("--workers", type=int, default=1,
                   help="run this many collector processes, one shard each (use every core)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("bridge", help="write MQTT readings into InfluxDB")
    p.add_argument("config")
    p.add_argument("--ready-file", help="written once the subscription is confirmed")
    p.set_defaults(func=cmd_bridge)

    p = sub.add_parser("rollup", help="write the hourly energy ledger")
    p.add_argument("config")
    p.add_argument("--backfill", nargs=2, metavar=("FROM", "TO"),
                   help="local dates or times in the site timezone, e.g. 2026-10-01 2026-11-01")
    p.add_argument("--hours", type=int, default=3, help="closed hours to (re)write")
    p.set_defaults(func=cmd_rollup)

    p = sub.add_parser("report", help="reports from the energy ledger")
    p.add_argument("kind", choices=["energy"])
    p.add_argument("config")
    p.add_argument("--month", required=True, help="YYYY-MM, in the site timezone")
    p.add_argument("--by", choices=["customer", "site", "rack", "rig"], default="customer")
    p.add_argument("--format", choices=["csv", "xlsx", "json"], default="csv")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="run the whole chain on a local simulated farm")
    p.add_argument("--rigs", type=int, default=50)
    p.add_argument("--duration", type=float, help="run this long, print a JSON summary, exit")
    p.add_argument("--interval", type=float, default=10.0, help="poll interval in seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--run-dir", default=".hashwatt-demo")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hashwatt` console script."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return int(args.func(args))


class _QuietPyasic(logging.Filter):
    """pyasic logs every rig fault on the root logger; the readings already carry them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "/pyasic/" not in record.pathname


def setup_logging(verbose: bool) -> None:
    """Our format and level; pyasic's import-time basicConfig and its rig noise undone."""
    import pyasic.logger  # noqa: F401 - its import reconfigures the root logger: let it first

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietPyasic())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="pyasic")


if __name__ == "__main__":
    raise SystemExit(main())
