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
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal, NoReturn

from hashwatt.config import Config, ConfigError, load_config
from hashwatt.errors import UsageError

log = logging.getLogger("hashwatt")


def _load(path: str, role: str | None = None) -> Config:
    """The config with every sink's own [influxdb] checks (exporters/sinks), so every
    command and service refuses a bad table at start-up with one line per problem."""
    from exporters.sinks import CONFIGS

    try:
        return load_config(path, role, sinks=CONFIGS)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summary(cfg: Config) -> str:
    """One line: what the config holds."""
    muted = sum(1 for r in cfg.rigs if r.maintenance)
    rigs = _plural(len(cfg.rigs), "rig") + (f" ({muted} in maintenance)" if muted else "")
    return (f"site {cfg.site.name}, {rigs}, {_plural(len(cfg.pdus), 'PDU')}, "
            f"{_plural(len(cfg.meters), 'meter')}, "
            f"influxdb {cfg.influxdb.api if cfg.influxdb else 'not configured'}")


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file; with --probe, also try the broker, InfluxDB, a sample of rigs
    and every PDU and meter."""
    cfg = _load(args.config)
    print(f"{args.config}: ok: {summary(cfg)}")
    if not args.probe:
        return 0
    from hashwatt.probe import run_probe

    checks = run_probe(cfg, args.sample)
    for check in checks:
        print(check.line())
    failed = sum(1 for c in checks if not c.ok)
    print(f"probe: {len(checks) - failed} of {len(checks)} checks ok")
    return 1 if failed else 0


def cmd_init(args: argparse.Namespace) -> int:
    """Create the InfluxDB 1.x database, retention policies and logins (idempotent), and the
    hosting customers' own databases and read-only logins."""
    from exporters.customers.access import setup_customers
    from exporters.sinks import InfluxV1Config, settings
    from hashwatt.setup import apply, plan

    cfg = _load(args.config, "init")
    try:
        url = cfg.influxdb.url if cfg.influxdb else ""
        influx = settings(cfg) if cfg.influxdb else None
        v1 = influx if isinstance(influx, InfluxV1Config) else None
        steps = apply(url, plan(cfg, readers=args.reader, ops_readers=args.ops_reader,
                                raw_retention=args.retention, influx=v1))
        steps += setup_customers(cfg)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    for line in steps:
        print(f"ok: {line}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a simulated farm."""
    from sim.farm import (
        Farm,
        FarmError,
        build_rigs,
        pdus_toml,
        run_farm,
        write_inventory,
    )
    from sim.model import Scenario
    from sim.pdus import pdus_for
    from sim.wire import LOOPBACK, Delivery

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
    if args.replies:
        farm.quirks = args.replies == "firmware"
    if args.delivery:
        farm.delivery = Delivery() if args.delivery == "lan" else LOOPBACK
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
    from hashwatt.config import shard

    if args.shard:
        cfg = shard(cfg, *args.shard)

    def reload() -> Config:
        """The inventory again, for SIGHUP (the same shard)."""
        from exporters.sinks import CONFIGS

        fresh = load_config(args.config, sinks=CONFIGS)
        return shard(fresh, *args.shard) if args.shard else fresh

    _run_async(run_collector(cfg, cycles=args.cycles, reload=reload))
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
    """Write the energy ledger: the last closed hours, a backfill range, or --follow."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from exporters.finance.ledger import closed_end, follow, recent_range, rollup
    from exporters.sinks import WriteRejected, WriteUnavailable
    from hashwatt.influxql import InfluxQLError

    cfg = _load(args.config, "influxdb")
    if args.follow:
        stop = threading.Event()
        _on_signals(stop.set)
        interval = args.interval or cfg.bridge.rollup_interval_s or 300.0
        if any(c.has_view for c in cfg.customers):  # their ledger rows into their databases
            from exporters.customers.fanout import follow_customers

            threading.Thread(target=follow_customers, args=(cfg, stop),
                             kwargs={"interval_s": interval, "hours": args.hours},
                             daemon=True, name="customer-ledgers").start()
        follow(cfg, stop, interval_s=interval, hours=args.hours,  # the first run at once,
               errors=(WriteUnavailable, WriteRejected, InfluxQLError, OSError),  # logged
               immediately=True)
        return 0
    if args.backfill:
        zone = ZoneInfo(cfg.site.timezone)
        try:
            start, end = (dt.datetime.fromisoformat(d).replace(tzinfo=zone).timestamp()
                          for d in args.backfill)
        except ValueError as exc:
            raise CliError(f"--backfill {' '.join(args.backfill)}: {exc}") from None
        if end <= start:
            raise CliError(f"--backfill {' '.join(args.backfill)}: FROM must be before TO")
        if closed_end(end, cfg.site.timezone) < end:
            print("warning: --backfill: the current hour is not finished; the ledger stops at "
                  "the start of it", file=sys.stderr)
        span = (int(start), int(end))
        rows = _backfill(cfg, *span)
    else:
        span = recent_range(cfg, args.hours)
        rows = rollup(cfg, *span)
    print(f"ledger: {rows} quarter-hour rows written")
    if any(c.has_view for c in cfg.customers):
        from exporters.customers.fanout import sync_ledgers

        print(f"customers: {sync_ledgers(cfg, *span)} ledger rows copied to their databases")
    return 0


def _backfill(cfg: Config, start: int, end: int) -> int:
    """The ledger day by day (the rollup's own chunk), with progress: months take a while."""
    from exporters.finance.ledger import rollup
    from hashwatt.progress import Progress

    day = 86400
    start -= start % 900  # a quarter hour: local hours are not UTC hours everywhere
    chunks = [(a, min(a + day, end)) for a in range(start, end, day)]
    rows = 0
    logging.getLogger("exporters.finance.ledger").setLevel(logging.WARNING)  # progress says it
    with Progress("backfill", len(chunks), "days") as progress:
        for a, b in chunks:
            rows += rollup(cfg, a, b)
            progress.advance(note=f"{rows} rows")
    return rows


def _output_path(value: str | None) -> Path | None:
    """An output file whose folder exists (checked before any long work)."""
    if not value:
        return None
    path = Path(value)
    if path.is_dir():
        raise CliError(f"--output {value}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise CliError(f"--output {value}: the folder {path.parent} does not exist")
    try:  # a real write: access() says yes to root on a read-only mount
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".hashwatt-"):
            pass
    except OSError as exc:
        raise CliError(f"--output {value}: cannot write in {path.parent}: "
                       f"{exc.strerror}") from None
    return path


def cmd_report(args: argparse.Namespace) -> int:
    """Print (or write) a monthly energy report (an empty month is an error), or customer
    statements."""
    if args.kind == "statement":
        return cmd_statement(args)
    if args.format == "pdf":
        raise CliError("report energy: --format is csv, xlsx or json")
    from exporters.finance.report import (
        energy_report,
        last_month,
        legacy_only_hours,
        notes,
        render,
        sidecar_path,
    )

    _output_path(args.output)
    cfg = _load(args.config, "influxdb")
    month = args.month or last_month(cfg.site.timezone)
    report = energy_report(cfg, month, args.by)
    old = legacy_only_hours(cfg, month)
    if old:
        print(f"warning: {old} hours of {month} are only in the old hourly ledger "
              "(energy_hourly), which reports do not read: rebuild them from raw readings with "
              "`hashwatt rollup --backfill` while those are kept (README: Upgrading from the "
              "hourly ledger)", file=sys.stderr)
    if not report.rows:
        print(f"warning: no ledger rows for site {cfg.site.name} in {month}: nothing to "
              f"report (has `hashwatt rollup --backfill` run for it?)", file=sys.stderr)
        return 3
    output = Path(args.output) if args.output else None
    data = render(report, args.format or "csv", output)
    if output is None:
        sys.stdout.buffer.write(data)
        if args.format in ("csv", None):  # data only on stdout: the method goes to stderr
            print(notes(report), file=sys.stderr)
    elif args.format in ("csv", None):
        print(f"{output}: method and totals in {sidecar_path(output)}", file=sys.stderr)
    return 0


def cmd_statement(args: argparse.Namespace) -> int:
    """Customer statements: one customer, or --all-customers (one file each)."""
    from exporters.customers.statements import StatementError, write_statements
    from hashwatt.influxql import InfluxQLError

    cfg = _load(args.config, "influxdb")
    if bool(args.customer) == bool(args.all_customers):
        print("error: report statement: give --customer ID or --all-customers",
              file=sys.stderr)
        return 2
    if args.expect_ledger_state and not args.customer:
        raise CliError("report statement: --expect-ledger-state goes with --customer")
    fmt: Literal["pdf", "xlsx", "json"] = args.format or "pdf"
    if fmt not in ("pdf", "xlsx", "json"):
        print("error: report statement: --format is pdf, xlsx or json", file=sys.stderr)
        return 2
    try:
        from exporters.finance.report import last_month

        month = args.month or last_month(cfg.site.timezone)
        return write_statements(cfg, month, fmt, customer_id=args.customer,
                                output=Path(args.output) if args.output else None,
                                publish_to_view=args.publish,
                                expect_state=args.expect_ledger_state)
    except StatementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (InfluxQLError, OSError) as exc:
        print(f"error: reading the ledger: {describe_error(exc)}", file=sys.stderr)
        return 1


def cmd_customers(args: argparse.Namespace) -> int:
    """Set up the customers' own databases, read logins and Grafana organisations."""
    import os

    from exporters.customers.access import GrafanaSetup, grafana_plan, setup_customers
    from exporters.customers.fanout import sync_ledgers
    from exporters.finance.ledger import recent_range

    cfg = _load(args.config, "init")
    if cfg.influxdb is None or not cfg.customers:
        raise CliError(f"{args.config}: customers setup needs [influxdb] and [[customers]]")
    if args.action == "sync-ledger":
        print(f"ok: {sync_ledgers(cfg, *recent_range(cfg, args.hours))} ledger rows copied")
        return 0
    steps = setup_customers(cfg)
    if not any(c.has_view for c in cfg.customers):
        print(f"{args.config}: no customer has a view of its own (access.password): nothing "
              "to set up", file=sys.stderr)
    if args.grafana_url:
        user = os.environ.get("GF_SECURITY_ADMIN_USER", "admin")
        password = os.environ.get("GF_SECURITY_ADMIN_PASSWORD")
        if not password:
            raise CliError("customers setup --grafana-url: set GF_SECURITY_ADMIN_PASSWORD")
        grafana = GrafanaSetup(args.grafana_url, user, password)
        try:
            steps += grafana.apply(grafana_plan(cfg, args.influx_url or cfg.influxdb.url))
        finally:
            grafana.close()
    for line in steps:
        print(f"ok: {line}")
    return 0


def _probe_target(args: argparse.Namespace) -> tuple[Config, Any]:
    """The config and [[pdus]] entry to probe: from --config (secrets as configured), or
    built from the flags."""
    import os

    from pydantic import SecretStr

    from hashwatt.config import PduConfig, SiteConfig

    host, _, port = args.address.rpartition(":") if args.address.count(":") == 1 else (
        args.address, "", "")
    if args.config:
        cfg = _load(args.config, "collector")
        found = [p for p in cfg.pdus if args.address in (p.id, p.address)]
        if not found:
            raise CliError(f"{args.config}: no [[pdus]] entry with id or address "
                           f"{args.address!r}")
        pdu = found[0].model_copy(update={"profile": args.profile or found[0].profile})
        return cfg, pdu
    if args.community is not None:
        print("warning: --community is visible in the process list; prefer "
              "--community-env NAME", file=sys.stderr)
    community = (args.community if args.community is not None
                 else os.environ.get(args.community_env, "public"))
    from pydantic import ValidationError

    from hashwatt.config import format_problems

    if port and not port.isdigit():
        raise CliError(f"{args.address}: the port {port!r} is not a number")
    try:
        pdu = PduConfig(id="probe", address=host, port=int(port or args.port),
                        community=SecretStr(community), snmp_version=args.snmp_version,
                        profile=args.profile, timeout_s=args.timeout, retries=args.retries)
    except ValidationError as exc:
        raise CliError("; ".join(format_problems(args.address, exc))) from None
    return Config(site=SiteConfig(name="probe")), pdu


def cmd_pdu_probe(args: argparse.Namespace) -> int:
    """Poll one PDU once and print what it reports under its profile."""
    import json

    from collector.pdu.probe import probe, render

    cfg, pdu = _probe_target(args)
    reading, reason = asyncio.run(probe(cfg, pdu))
    if args.json:
        print(json.dumps({"reason": reason, **reading}, indent=2))
    else:
        print(render(pdu, reading, reason))
    return 0 if reading["online"] else 1


def cmd_discover(args: argparse.Namespace) -> int:
    """Scan networks for rigs; write or reconcile the inventory CSV."""
    from hashwatt.discover import DiscoverError, run

    output = _output_path(args.output)
    inventory = Path(args.inventory) if args.inventory else None
    try:
        text, lines = run(args.cidr, output=output, inventory=inventory,
                          concurrency=args.concurrency, timeout_s=args.timeout)
    except DiscoverError as exc:
        raise CliError(str(exc)) from None
    if output is None:
        sys.stdout.write(text)
    for line in lines:
        print(line, file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The fleet at a glance from InfluxDB."""
    from rich.console import Console

    from exporters.finance.store import query_client
    from hashwatt.status import fleet, render

    cfg = _load(args.config)
    if cfg.influxdb is None:
        raise CliError(f"{args.config}: status reads InfluxDB: add an [influxdb] section")
    db = query_client(cfg)
    try:
        state = fleet(cfg, db)
    finally:
        db.close()
    Console(width=args.width, soft_wrap=False).print(render(state))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Take rigs or collectors off the roster: the alert rules stop paging for them."""
    import time

    from exporters.roster import forget
    from exporters.sinks import make_sink, query_client

    cfg = _load(args.config, "influxdb")
    if cfg.influxdb is None:
        raise CliError(f"{args.config}: forget writes to InfluxDB: add an [influxdb] section")
    site = args.site or cfg.site.name
    names = [("rig", n) for n in args.rig] + [("collector", n) for n in args.collector]
    if not names:
        raise CliError("name at least one --rig or --collector")
    db, sink = query_client(cfg), make_sink(cfg)
    unknown = []
    try:
        for measurement, name in names:
            if forget(db, sink.write, measurement=measurement, site=site, name=name,
                      now_s=time.time()) == 0:
                unknown.append(f"{measurement} {name}")
            else:
                print(f"forgotten: {measurement} {name} (site {site})")
    finally:
        sink.close()
        db.close()
    if unknown:
        raise CliError(f"not known in the last 72 h at site {site}: {', '.join(unknown)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run mosquitto, influxd, a simulated farm, the collector and the bridge together."""
    from sim.demo import run_demo

    return run_demo(rigs=args.rigs, duration=args.duration, run_dir=Path(args.run_dir),
                    interval=args.interval, seed=args.seed, base=args.base)


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


class CliError(UsageError):
    """A mistake on the command line or in the surroundings: one line, exit 2."""


def month(value: str) -> str:
    """An argparse type: YYYY-MM with a month from 01 to 12."""
    import re

    match = re.fullmatch(r"(\d{4})-(\d{2})", value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise argparse.ArgumentTypeError(f"{value!r} is not a month: use YYYY-MM, e.g. 2026-10")
    return value


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` above zero."""
    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if not number > 0:
            raise argparse.ArgumentTypeError(f"{value!r}: must be above 0")
        return number
    parse.__name__ = kind.__name__
    return parse


def shard_spec(value: str) -> tuple[int, int]:
    """An argparse type: I/N with 0 <= I < N."""
    import re

    match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise argparse.ArgumentTypeError(f"{value!r}: give I/N with 0 <= I < N, e.g. 0/4")
    return int(match.group(1)), int(match.group(2))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hashwatt")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class _SubParsers(argparse._SubParsersAction):
    """Every subcommand accepts -v/--verbose too (`hashwatt collect cfg.toml -v`)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().add_parser(name, **kwargs)
        parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                            help="more logging: -v debug for hashwatt, -vv for libraries too")
        return parser


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line, not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        """Print `error: <prog>: message` and exit 2."""
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="hashwatt", description=__doc__)
    parser.register("action", "parsers", _SubParsers)
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging: -v debug for hashwatt, -vv for libraries too")
    parser.add_argument("--version", action="version", version=f"hashwatt {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a config file (--probe: and try it)")
    p.add_argument("config")
    p.add_argument("--probe", action="store_true",
                   help="connect to the broker and InfluxDB, poll a sample of rigs and every "
                        "PDU and meter once")
    p.add_argument("--sample", type=int, default=10, help="rigs to poll with --probe")
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
    p.add_argument("--replies", choices=["firmware", "tidy"],
                   help="firmware: shaped and quirky like real firmware; tidy: the old clean "
                        "replies (default: see sim.farm.FIRMWARE_QUIRKS)")
    p.add_argument("--delivery", choices=["lan", "loopback"],
                   help="lan: replies in 1460-byte segments with small gaps; loopback: in one "
                        "piece (default: see sim.farm.LAN_DELIVERY)")
    p.add_argument("--ready-file")
    p.add_argument("--duration", type=float)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("collect", help="poll rigs and publish readings over MQTT")
    p.add_argument("config")
    p.add_argument("--cycles", type=int, help="stop after this many cycles")
    p.add_argument("--shard", metavar="I/N", type=shard_spec,
                   help="poll only shard I of N of the inventory (run N collectors)")
    p.add_argument("--workers", type=positive(int), default=1,
                   help="run this many collector processes, one shard each (use every core)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("bridge", help="write MQTT readings into InfluxDB")
    p.add_argument("config")
    p.add_argument("--ready-file", help="written once the subscription is confirmed")
    p.set_defaults(func=cmd_bridge)

    p = sub.add_parser("rollup", help="write the energy ledger (closed hours only)")
    p.add_argument("config")
    p.add_argument("--backfill", nargs=2, metavar=("FROM", "TO"),
                   help="local dates or times in the site timezone, e.g. 2026-10-01 2026-11-01")
    p.add_argument("--hours", type=int, default=3, help="closed hours to (re)write")
    p.add_argument("--follow", action="store_true",
                   help="keep rewriting the last --hours closed hours (a service of its own)")
    p.add_argument("--interval", type=float,
                   help="seconds between runs with --follow (default bridge.rollup_interval_s)")
    p.set_defaults(func=cmd_rollup)

    p = sub.add_parser("report", help="reports from the energy ledger")
    p.add_argument("kind", choices=["energy", "statement"])
    p.add_argument("config")
    p.add_argument("--month", type=month,
                   help="YYYY-MM in the site timezone (default: last month)")
    p.add_argument("--by", choices=["customer", "site", "rack", "rig"], default="customer")
    p.add_argument("--format", choices=["csv", "xlsx", "json", "pdf"], default=None,
                   help="energy: csv (default), xlsx, json; statement: pdf (default), xlsx, json")
    p.add_argument("--output", help="write to this file instead of stdout "
                   "(statement --all-customers: a folder)")
    p.add_argument("--customer", help="statement: the customer id")
    p.add_argument("--all-customers", action="store_true",
                   help="statement: one file per customer")
    p.add_argument("--publish", action="store_true",
                   help="statement: also list it in the customer's own Grafana view")
    p.add_argument("--expect-ledger-state", metavar="SHA256",
                   help="statement: reproduce a closed statement; fail if its ledger rows "
                   "changed")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("customers", help="customers' own views: databases, logins, Grafana")
    p.add_argument("action", choices=["setup", "sync-ledger"])
    p.add_argument("config")
    p.add_argument("--grafana-url", help="setup: also create the Grafana organisations here "
                   "(admin from GF_SECURITY_ADMIN_USER/GF_SECURITY_ADMIN_PASSWORD)")
    p.add_argument("--influx-url", help="setup: InfluxDB's URL as Grafana reaches it "
                   "(default: the config's)")
    p.add_argument("--hours", type=int, default=24 * 35,
                   help="sync-ledger: closed hours to copy (default 35 days)")
    p.set_defaults(func=cmd_customers)

    p = sub.add_parser("pdu", help="PDU tools")
    pdu_sub = p.add_subparsers(dest="pdu_command", required=True)
    p = pdu_sub.add_parser("probe", help="show what a PDU reports under its profile")
    p.add_argument("address", help="HOST or HOST:PORT (with --config: a [[pdus]] id or address)")
    p.add_argument("--config", help="take the PDU's settings and secrets from this config")
    p.add_argument("--port", type=int, default=161)
    p.add_argument("--profile", help="a profile name instead of detection")
    p.add_argument("--snmp-version", choices=["1", "2c"], default="2c")
    p.add_argument("--community-env", default="HASHWATT_SNMP_COMMUNITY", metavar="NAME",
                   help="environment variable holding the community (default: %(default)s, "
                        "else 'public')")
    p.add_argument("--community", help="the community itself (visible in the process list)")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the reading as JSON")
    p.set_defaults(func=cmd_pdu_probe)

    p = sub.add_parser("discover", help="find rigs on networks and write the inventory CSV")
    p.add_argument("cidr", nargs="+", help="networks (10.0.1.0/24) or single addresses")
    p.add_argument("--output", help="write the inventory CSV here (default: stdout)")
    p.add_argument("--inventory", help="an existing inventory CSV: report new, missing and "
                                       "moved rigs and keep its columns")
    p.add_argument("--concurrency", type=positive(int), default=256,
                   help="addresses probed at once")
    p.add_argument("--timeout", type=positive(float), default=1.0,
                   help="seconds a connect may take (a LAN answers in milliseconds)")
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser("status", help="the fleet at a glance: racks, rigs down and why, "
                                      "collectors")
    p.add_argument("config")
    p.add_argument("--width", type=int, help="table width (default: the terminal's)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("forget", help="take a retired rig or collector off the roster (its "
                                      "offline/silent alert resolves)")
    p.add_argument("config")
    p.add_argument("--rig", action="append", default=[], help="rig id (repeatable)")
    p.add_argument("--collector", action="append", default=[],
                   help="collector id (repeatable)")
    p.add_argument("--site", help="default: the config's site")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("demo", help="run the whole chain on a local simulated farm")
    p.add_argument("--rigs", type=int, default=50)
    p.add_argument("--duration", type=float, help="run this long, print a JSON summary, exit")
    p.add_argument("--interval", type=float, default=10.0, help="poll interval in seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--run-dir", default=".hashwatt-demo")
    p.add_argument("--base", default="127.10.0.0",
                   help="the farm's rigs get the loopback addresses after this one")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hashwatt` console script: every error is one line on stderr
    (the traceback only with -v)."""
    args = build_parser().parse_args(argv)
    try:
        setup_logging(args.verbose)  # (imports pyasic: a Ctrl-C may land in it)
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"error: hashwatt {args.command}: interrupted", file=sys.stderr)
        return 130
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.verbose:
            raise
        print(f"error: {describe_error(exc)} (run with -v for the details)", file=sys.stderr)
        return 1


def describe_error(exc: BaseException) -> str:
    """One line for an unexpected error, naming the server when it is a connection."""
    import httpx

    from hashwatt.influxql import InfluxQLError

    if isinstance(exc, httpx.TransportError):
        try:
            url = exc.request.url
            where = f"{url.scheme}://{url.host}:{url.port}"
        except RuntimeError:  # raised without a request
            where = "the server"
        kind = ("timed out" if isinstance(exc, httpx.TimeoutException)
                else "refused or unreachable")
        return f"cannot reach {where}: connection {kind} ({exc or type(exc).__name__}); is " \
               f"InfluxDB running there?"
    if isinstance(exc, InfluxQLError):
        return _influx_error(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _influx_error(exc: Any) -> str:
    """An InfluxDB answer that is an error, said for the person who configured it."""
    where = f"InfluxDB at {exc.url.rstrip('/')}" if exc.url else "InfluxDB"
    text = " ".join(str(exc).removeprefix(f"HTTP {exc.status}: ").split())  # one line
    if exc.status in (401, 403):
        return (f"{where} refused the login (HTTP {exc.status}: {text}): check [influxdb] "
                "username and password (or token)")
    if exc.status >= 500:
        return f"{where} failed (HTTP {exc.status}: {text}): see the server's log"
    if exc.status:
        return f"{where} answered HTTP {exc.status}: {text}"
    return f"{where}: {text}"


class _QuietPyasic(logging.Filter):
    """pyasic logs every rig fault on the root logger; the readings already carry them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "/pyasic/" not in record.pathname


# libraries that talk a lot: per request (httpx, httpcore), per rig fault (pyasic), per
# SNMP engine step (pysnmp); heard only with -vv
NOISY = ("httpx", "httpcore", "pyasic", "pysnmp", "pymodbus", "asyncio", "urllib3",
         "snmpsim", "paho", "websockets", "passlib", "markdown_it")


def setup_logging(verbose: int | bool = 0) -> None:
    """Our format and level; pyasic's import-time basicConfig and the libraries' noise
    undone: -v is DEBUG for hashwatt only, -vv for the libraries too."""
    import pyasic.logger  # noqa: F401 - its import reconfigures the root logger: let it first

    level = int(verbose)
    logging.basicConfig(level=logging.DEBUG if level else logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level < 2:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_QuietPyasic())
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING if level < 2 else logging.NOTSET)
    warnings.filterwarnings("ignore", module="pyasic")


if __name__ == "__main__":
    raise SystemExit(main())
