"""Every CLI command given wrong input or a broken surrounding, run as the operator runs it
(the real `hashwatt` CLI as a subprocess): one line on stderr, no traceback, a non-zero exit,
and no seeded secret anywhere in what it prints. Table-driven: CASES names each situation,
the command line and the exact line expected. The servers are real (an influxd with
authentication, a mosquitto with a password file); only "InfluxDB answers 500" and "a server
that never answers" are stand-ins (stdlib HTTP servers), since no real influxd can be made to
fail on demand."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from sim.launch import Influxd, Mosquitto, free_port
from tests.conftest import next_base, wait_for

pytestmark = pytest.mark.e2e

# seeded secrets: none of them may appear in any output of any case
SECRETS = {"HW_T_MQTT_PASSWORD": "mqtt-pw-Q7xv31", "HW_T_INFLUX_PASSWORD": "influx-pw-K2mz88",
           "HW_T_RIG_PASSWORD": "rig-pw-Z9ty04"}
RIGHT_MQTT, RIGHT_INFLUX = "right-mqtt-R4nd0m", "right-influx-R4nd0m"
LITERAL = "literal-rig-pw-W3qq57"  # a literal secret in the TOML file itself


class _Answer(http.server.BaseHTTPRequestHandler):
    """A stand-in server: `status` 500 with InfluxDB's error body, or never answering."""

    status = 500
    hang = threading.Event()
    asked = threading.Event()  # a request reached the server that never answers

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        if self.status == 0:
            self.asked.set()
            self.hang.wait(30)
            return
        body = b'{"error":"internal failure: boom"}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


def _serve(status: int) -> http.server.ThreadingHTTPServer:
    handler = type(f"Answer{status}", (_Answer,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Site:
    """Everything the cases run against."""

    folder: Path
    influx_auth: str  # an influxd with authentication on
    influx_500: str
    influx_hung: str
    influx_down: str
    broker_port: int
    broker_down: int
    configs: dict[str, Path] = field(default_factory=dict)

    def config(self, name: str, *, influx: str, mqtt_port: int, extra: str = "") -> Path:
        """A config whose secrets come from the seeded environment."""
        path = self.folder / f"{name}.toml"
        path.write_text(f"""state_dir = "state"
[site]
name = "north"
timezone = "Europe/Berlin"
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "collector"
password = {{ env = "HW_T_MQTT_PASSWORD" }}
[influxdb]
url = "{influx}"
database = "hashwatt"
username = "admin"
password = {{ env = "HW_T_INFLUX_PASSWORD" }}
[[rigs]]
id = "r1"
address = "127.0.0.1"
web_password = {{ env = "HW_T_RIG_PASSWORD" }}
rpc_password = "{LITERAL}"
[[customers]]
id = "acme"
name = "Acme"
currency = "EUR"
price = {{ kind = "fixed", per_kwh = 0.05 }}
{extra}""")
        path.chmod(0o600)
        self.configs[name] = path
        return path


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    # a folder of its own, readable by a capability-less root (pytest's tmp is 0700)
    folder = Path(tempfile.mkdtemp(prefix="hashwatt-cli-"))
    influxd = Influxd(folder / "influxd", auth=True).start()
    httpx.post(f"{influxd.url}/query", data={
        "q": f"CREATE USER admin WITH PASSWORD '{RIGHT_INFLUX}' WITH ALL PRIVILEGES"})
    broker = Mosquitto(folder / "mosquitto", passwords={"collector": RIGHT_MQTT}).start()
    failing, hung = _serve(500), _serve(0)
    s = Site(folder, influxd.url, f"http://127.0.0.1:{failing.server_port}",
             f"http://127.0.0.1:{hung.server_port}", f"http://127.0.0.1:{free_port()}",
             broker.port, free_port())
    s.config("auth", influx=s.influx_auth, mqtt_port=s.broker_port)
    s.config("down", influx=s.influx_down, mqtt_port=s.broker_down)
    s.config("failing", influx=s.influx_500, mqtt_port=s.broker_port)
    s.config("hung", influx=s.influx_hung, mqtt_port=s.broker_down)
    s.config("badtz", influx=s.influx_down, mqtt_port=s.broker_down).write_text(
        s.configs["down"].read_text().replace("Europe/Berlin", "Europe/Berln"))
    s.config("locked", influx=s.influx_down, mqtt_port=s.broker_down).chmod(0)
    (folder / "readonly").mkdir(mode=0o555)
    (folder / "inventory.csv").write_text("id,address\nr1,10.0.0.1\n")
    (folder / "inventory.csv").chmod(0)
    yield s
    _Answer.hang.set()
    failing.shutdown()
    hung.shutdown()
    broker.stop()
    influxd.stop()
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Case:
    """A command line (`{name}` placeholders filled from the Site), its exit code and the
    one stderr line expected."""

    argv: tuple[str, ...]
    code: int
    line: str
    unprivileged: bool = False  # root without CAP_DAC_OVERRIDE: file modes apply to it too
    stdout: str | None = None  # the exact stdout, where it says something
    pattern: bool = False  # `line` is a regular expression (a list that grows)


def _fill(text: str, s: Site) -> str:
    values = {"dir": str(s.folder), "auth": s.influx_auth, "failing": s.influx_500,
              "down": s.influx_down, "broker": str(s.broker_port),
              "nobroker": str(s.broker_down),
              **{f"cfg_{k}": str(v) for k, v in s.configs.items()}}
    return text.format(**values)


PROBE_REFUSED = ("{cfg_auth}: ok: site north, 1 rig, 0 PDUs, 0 meters, influxdb v1\n"
                 "FAIL  broker 127.0.0.1:{broker}: refused: Not authorized\n"
                 "FAIL  influxdb {auth}: answers (version 1.6.7~rc0) but the query failed: "
                 "HTTP 401: {{\"error\":\"authorization failed\"}}\n")

CASES: dict[str, Case] = {
    # files
    "config missing": Case(("check-config", "{dir}/nope.toml"), 2,
                           "error: {dir}/nope.toml: file not found"),
    "config is a folder": Case(("status", "{dir}"), 2,
                               "error: {dir}: is a folder, not a config file"),
    "config unreadable": Case(("check-config", "{cfg_locked}"), 2,
                              "error: {cfg_locked}: cannot read: Permission denied",
                              unprivileged=True),
    "inventory unreadable": Case(("discover", "127.0.0.1/32", "--inventory",
                                  "{dir}/inventory.csv"), 2,
                                 "error: {dir}/inventory.csv: cannot read the inventory "
                                 "file: Permission denied", unprivileged=True),
    "inventory missing": Case(("discover", "127.0.0.1/32", "--inventory", "{dir}/no.csv"), 2,
                              "error: {dir}/no.csv: inventory file not found"),
    # dates, months, time zones
    "month 13": Case(("report", "energy", "{cfg_down}", "--month", "2026-13"), 2,
                     "error: hashwatt report: argument --month: '2026-13' is not a month: use "
                     "YYYY-MM, e.g. 2026-10 (see hashwatt report --help)"),
    "month as a date": Case(("report", "statement", "{cfg_down}", "--month", "2026-10-01",
                             "--customer", "acme"), 2,
                            "error: hashwatt report: argument --month: '2026-10-01' is not a "
                            "month: use YYYY-MM, e.g. 2026-10 (see hashwatt report --help)"),
    "February 30": Case(("rollup", "{cfg_down}", "--backfill", "2026-02-30", "2026-03-01"), 2,
                        "error: --backfill 2026-02-30 2026-03-01: day is out of range for "
                        "month"),
    "backfill backwards": Case(("rollup", "{cfg_down}", "--backfill", "2026-03-01",
                                "2026-02-01"), 2,
                               "error: --backfill 2026-03-01 2026-02-01: FROM must be before "
                               "TO"),
    "unknown time zone": Case(("check-config", "{cfg_badtz}"), 2,
                              "error: {cfg_badtz}:4: site.timezone: unknown timezone "
                              "'Europe/Berln' (use an IANA name like Europe/Berlin)"),
    # unknown names
    "unknown customer": Case(("report", "statement", "{cfg_down}", "--month", "2026-10",
                              "--customer", "globex"), 2,
                             "error: {cfg_down}: customers: no customer 'globex' (known: "
                             "acme)"),
    "unknown PDU": Case(("pdu", "probe", "pdu-9", "--config", "{cfg_down}"), 2,
                        "error: {cfg_down}: no [[pdus]] entry with id or address 'pdu-9'"),
    "unknown command": Case(("statu", "{cfg_down}"), 2,
                            r"error: hashwatt: argument command: invalid choice: 'statu' "
                            r"\(choose from 'check-config', .*'status'.*\) \(see hashwatt "
                            r"--help\)", pattern=True),
    "bad network": Case(("discover", "10.0.0.0/33"), 2,
                        "error: '10.0.0.0/33' is not a network: give CIDRs like 10.0.1.0/24 "
                        "or single addresses"),
    "zero concurrency": Case(("discover", "127.0.0.1", "--concurrency", "0"), 2,
                             "error: hashwatt discover: argument --concurrency: '0': must be "
                             "above 0 (see hashwatt discover --help)"),
    "bad shard": Case(("collect", "{cfg_down}", "--shard", "3/2"), 2,
                      "error: hashwatt collect: argument --shard: '3/2': give I/N with 0 <= I "
                      "< N, e.g. 0/4 (see hashwatt collect --help)"),
    "PDU port out of range": Case(("pdu", "probe", "10.0.0.1:99999"), 2,
                                  "error: 10.0.0.1:99999: port: Input should be less than or "
                                  "equal to 65535"),
    # InfluxDB down, refusing the login, failing
    "status, InfluxDB down": Case(("status", "{cfg_down}"), 1,
                                  "error: cannot reach {down}: connection refused or "
                                  "unreachable ([Errno 111] Connection refused); is InfluxDB "
                                  "running there? (run with -v for the details)"),
    "rollup, InfluxDB down": Case(("rollup", "{cfg_down}"), 1,
                                  "error: cannot reach {down}: connection refused or "
                                  "unreachable ([Errno 111] Connection refused); is InfluxDB "
                                  "running there? (run with -v for the details)"),
    "status, InfluxDB 401": Case(("status", "{cfg_auth}"), 1,
                                 "error: InfluxDB at {auth} refused the login (HTTP 401: "
                                 "{{\"error\":\"authorization failed\"}}): check [influxdb] "
                                 "username and password (or token) (run with -v for the "
                                 "details)"),
    "report, InfluxDB 401": Case(("report", "energy", "{cfg_auth}", "--month", "2026-10"), 1,
                                 "error: InfluxDB at {auth} refused the login (HTTP 401: "
                                 "{{\"error\":\"authorization failed\"}}): check [influxdb] "
                                 "username and password (or token) (run with -v for the "
                                 "details)"),
    "statement, InfluxDB 401": Case(("report", "statement", "{cfg_auth}", "--month",
                                     "2026-10", "--customer", "acme"), 1,
                                    "error: reading the ledger: InfluxDB at {auth} refused "
                                    "the login (HTTP 401: {{\"error\":\"authorization "
                                    "failed\"}}): check [influxdb] username and password (or "
                                    "token)"),
    "rollup, InfluxDB 500": Case(("rollup", "{cfg_failing}"), 1,
                                 "error: InfluxDB at {failing} failed (HTTP 500: {{\"error\":"
                                 "\"internal failure: boom\"}}): see the server's log (run "
                                 "with -v for the details)"),
    "init, InfluxDB 500": Case(("init", "{cfg_failing}"), 1,
                               "error: InfluxDB at {failing} failed (HTTP 500: {{\"error\":"
                               "\"internal failure: boom\"}}): see the server's log (run with "
                               "-v for the details)"),
    # broker and InfluxDB refusing the login: the probe says which, exit 1
    "probe, both refuse the login": Case(("check-config", "{cfg_auth}", "--probe", "--sample",
                                          "0"), 1, "", stdout=PROBE_REFUSED +
                                         "probe: 0 of 2 checks ok\n"),
    # output paths
    "output folder missing": Case(("report", "energy", "{cfg_down}", "--month", "2026-10",
                                   "--output", "{dir}/no/oct.csv"), 2,
                                  "error: --output {dir}/no/oct.csv: the folder {dir}/no does "
                                  "not exist"),
    "output folder read-only": Case(("discover", "127.0.0.1/32", "--output",
                                     "{dir}/readonly/inv.csv"), 2,
                                    "error: --output {dir}/readonly/inv.csv: cannot write in "
                                    "{dir}/readonly: Permission denied", unprivileged=True),
    "output is a folder": Case(("report", "energy", "{cfg_down}", "--month", "2026-10",
                                "--output", "{dir}"), 2,
                               "error: --output {dir}: is a folder; give a file name"),
}


def _unprivileged() -> list[str]:
    """A prefix that runs a command without the root's power to ignore file modes."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file modes cannot be tested")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def _env() -> dict[str, str]:
    return {**os.environ, **SECRETS}


def _run(case: Case, s: Site) -> subprocess.CompletedProcess[str]:
    argv = [*(_unprivileged() if case.unprivileged else []), sys.executable, "-m",
            "hashwatt.cli", *(_fill(a, s) for a in case.argv)]
    return subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=60,
                          cwd=s.folder)


@pytest.fixture(scope="module")
def runs(site: Site) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case, a few at a time (each is a Python start-up: ~0.7 s of CPU)."""
    with ThreadPoolExecutor(3) as pool:
        done = {name: pool.submit(_run, case, site) for name, case in CASES.items()}
    return {name: future.result() for name, future in done.items()}


def assert_no_secret(*texts: str) -> None:
    """None of the seeded secrets (nor the literal one) in any of the texts."""
    for secret in (*SECRETS.values(), LITERAL):
        for text in texts:
            assert secret not in text


@pytest.mark.parametrize("name", CASES)
def test_wrong_input_is_one_line_and_no_secret(name: str, site: Site,
                                               runs: dict[str, subprocess.CompletedProcess[str]]
                                               ) -> None:
    case, run = CASES[name], runs[name]
    assert run.returncode == case.code, run.stderr
    assert "Traceback" not in run.stderr
    if case.stdout is not None:
        assert run.stdout == _fill(case.stdout, site)
    if case.pattern:
        [line] = run.stderr.splitlines()
        assert re.fullmatch(case.line, line), line
    elif case.line:
        assert run.stderr.splitlines() == [_fill(case.line, site)]
    assert_no_secret(run.stdout, run.stderr)


def test_v_shows_the_traceback_and_still_no_secret(site: Site) -> None:
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "status",
                          str(site.configs["auth"]), "-vv"], capture_output=True, text=True,
                         env=_env(), timeout=60)
    assert run.returncode == 1
    assert "Traceback" in run.stderr and "InfluxQLError: HTTP 401" in run.stderr
    assert_no_secret(run.stdout, run.stderr)


INTERRUPTED: dict[str, tuple[tuple[str, ...], str, int, str]] = {
    # (argv, what shows it is in the middle of its work, exit code, its last stderr line
    # as a regular expression)
    "status waiting for InfluxDB": (("status", "{cfg_hung}"), "asked", 130,
                                    "^error: hashwatt status: interrupted$"),
    "report waiting for InfluxDB": (("report", "energy", "{cfg_hung}", "--month", "2026-10"),
                                    "asked", 130, "^error: hashwatt report: interrupted$"),
    "discover identifying a rig that never answers": (
        ("discover", "{hung_host}/32"), "accepted", 130, "^error: hashwatt discover: "
                                                         "interrupted$"),
    # the services stop cleanly at once, broker or not (their spool keeps what is unsent)
    "collect without a broker": (("collect", "{cfg_hung}"), "cycle 1:", 0,
                                 r"INFO collector\.publisher: stopping: \d+ readings stay in "
                                 "the spool and go out after the next start$"),
    # -vv (the libraries' debug lines too) against a broker refusing the login: the seeded
    # MQTT password appears nowhere, paho's CONNECT debug line included
    "collect -vv, the broker refusing the login": (
        ("collect", "{cfg_auth}", "-vv"), "refused the connection", 0,
        r"INFO collector\.publisher: stopping: \d+ readings stay in the spool and go out after "
        "the next start$"),
    "bridge without a broker": (("bridge", "{cfg_hung}"), "subscribing", 0,
                                "INFO exporters.bridge: bridge hashwatt-bridge: stopped "
                                "before the subscription$"),
}


@pytest.mark.parametrize("name", INTERRUPTED)
def test_ctrl_c_in_the_middle(name: str, site: Site) -> None:
    argv, busy, code, last = INTERRUPTED[name]
    _Answer.asked.clear()
    with HungListener(4028) as rig:
        cmd = [sys.executable, "-m", "hashwatt.cli",
               *(_fill(a.replace("{hung_host}", rig.host), site) for a in argv)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=_env(), cwd=site.folder)
        lines: list[str] = []
        assert proc.stderr is not None and proc.stdout is not None
        stderr = proc.stderr
        reader = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")),
                                  daemon=True)
        reader.start()
        signs = {"asked": _Answer.asked.is_set, "accepted": lambda: bool(rig.accepted)}
        sign = signs.get(busy, lambda: any(busy in line for line in lines))
        assert wait_for(lambda: sign() or proc.poll() is not None, 30), "never got busy"
        assert proc.poll() is None, lines
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        proc.wait(timeout=20)
        reader.join(5)
        out = proc.stdout.read()
    assert time.monotonic() - started < 5, "Ctrl-C took too long"
    err = "".join(lines)
    assert proc.returncode == code, err
    if not any(a.startswith("-v") for a in argv):  # -v: debug lines may carry tracebacks
        assert "Traceback" not in err
    verbose = any(a.startswith("-v") for a in argv)  # (debug lines may follow it)
    assert any(re.search(last, line) for line in err.splitlines()[-1 if not verbose else 0:]), err
    if verbose:  # said once, not at every reconnection attempt
        assert err.count("refused the connection") == 1, err
    assert_no_secret(out, err)


class HungListener:
    """A loopback address whose port accepts connections and never answers (a hung rig)."""

    def __init__(self, port: int) -> None:
        import socket

        for attempt in range(5):  # another run on this machine may hold a subnet
            self.host = f"{next_base().rsplit('.', 2)[0]}.0.9"
            try:
                self.sock = socket.create_server((self.host, port))
                break
            except OSError:
                if attempt == 4:
                    raise
        self.accepted: list[object] = []

    def __enter__(self) -> HungListener:
        def accept() -> None:
            while True:
                try:
                    self.accepted.append(self.sock.accept())
                except OSError:
                    return
        threading.Thread(target=accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
