"""Launching local mosquitto, influxd, victoria-metrics and snmpsim for the demo and the tests.

Each one runs as an ordinary child process in a directory of its own, on free loopback
ports, never on the default ports and never as a shared system service.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from hashwatt.errors import ServiceError

APT_PACKAGES = {"mosquitto": "mosquitto", "influxd": "influxdb",
                "victoria-metrics": "victoria-metrics"}
SEARCH_PATH = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str:
    """Locate a service binary or say which Debian package provides it."""
    found = shutil.which(name) or shutil.which(name, path=":".join(SEARCH_PATH))
    if found:
        return found
    package = APT_PACKAGES.get(name, name)
    raise ServiceError(f"{name} not found: install it with `apt-get install {package}`")


def _wait_until(check: object, what: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode} while starting")
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise ServiceError(f"{what} did not become ready within {timeout:.0f} s")


def _tcp_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return 200 <= int(resp.status) < 300
    except OSError:
        return False


@dataclass
class LocalService:
    """A child process with a run directory and a log file."""

    run_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    name = "service"

    def command(self) -> list[str]:
        """The argv that starts the service."""
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the service answers."""
        return _tcp_open(self.host, self.port)

    def environment(self) -> dict[str, str] | None:
        """The child's environment: ours without anything a service does not need (the
        caller's secrets stay out of children that would only inherit them)."""
        return plain_environment()

    def pick_port(self) -> int:
        """A free port for the service."""
        return free_port(self.host)

    def start(self, timeout: float = 30.0) -> Self:
        """Start the process and wait until it answers."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = self.pick_port()
        argv = self.command()
        log = (self.run_dir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.run_dir,
                                     start_new_session=True, env=self.environment())
        log.close()
        _wait_until(self.ready, self.name, self.proc, timeout)
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop the process (SIGKILL with kill=True)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# what a service child may inherit from us; everything else (secrets above all) stays here
_PLAIN_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SHELL")


def plain_environment() -> dict[str, str]:
    """Our environment reduced to what any service needs (locale, paths, user)."""
    return {k: v for k, v in os.environ.items() if k in _PLAIN_ENV or k.startswith("LC_")}


@dataclass
class Mosquitto(LocalService):
    """A mosquitto broker with persistence and queue limits sized for long outages."""

    name = "mosquitto"
    max_queued_messages: int = 1_000_000
    # sessions and queues reach the disk within a second by default: a killed broker keeps
    # them; the crash-window drills set the deploy's 5 s or more
    autosave_interval_s: int = 1
    # TLS (ca, cert, key files), user -> password, and ACL text: all three lock it down
    tls: tuple[Path, Path, Path] | None = None
    passwords: dict[str, str] | None = None
    acl: str | None = None

    def _security(self) -> str:
        lines = []
        if self.tls is not None:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        if self.passwords is not None:
            path = self.run_dir / "passwd"
            write_password_file(path, self.passwords)
            lines += ["allow_anonymous false", f"password_file {path}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            (self.run_dir / "acl").write_text(self.acl)
            lines.append(f"acl_file {self.run_dir / 'acl'}")
        return "".join(line + "\n" for line in lines)

    def command(self) -> list[str]:
        """Write mosquitto.conf and return the argv."""
        data = self.run_dir / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n" + self._security() +
            # started as root, mosquitto would switch to its own user and lose the run dir
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            f"autosave_interval {self.autosave_interval_s}\n"
            f"max_queued_messages {self.max_queued_messages}\n"
            "max_queued_bytes 0\n"
            "max_inflight_messages 0\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        return [find_binary("mosquitto"), "-c", str(conf)]


def write_password_file(path: Path, passwords: dict[str, str]) -> None:
    """A mosquitto password file, hashed by `mosquitto_passwd -U` from a 0600 plain-text
    file: `-b user password` would put each password on a command line (/proc/*/cmdline)."""
    for user, password in passwords.items():
        if ":" in user or "\n" in user + password:
            raise ServiceError(f"mosquitto user {user!r}: no ':' in the name, no newlines")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{user}:{password}\n" for user, password in passwords.items())
    subprocess.run([find_binary("mosquitto_passwd"), "-U", str(path)], check=True,
                   capture_output=True)


@dataclass
class HttpService(LocalService):
    """A service that is ready once its health path answers 2xx."""

    health_path = "/"

    @property
    def url(self) -> str:
        """The HTTP base URL."""
        return f"http://{self.host}:{self.port}"

    def ready(self) -> bool:
        """The health path answers."""
        return _http_ok(f"{self.url}{self.health_path}")


@dataclass
class Influxd(HttpService):
    """An InfluxDB 1.x server (the Debian package) with a generated config."""

    name = "influxd"
    health_path = "/ping"
    auth: bool = False
    http_extra: str = ""  # more [http] settings, e.g. "max-body-size = 20000" (drills)

    def command(self) -> list[str]:
        """Write influxd.conf pointing every dir and port at this run directory."""
        base = self.run_dir / "influxdb"
        rpc_port = free_port(self.host)
        conf = self.run_dir / "influxd.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "{self.host}:{rpc_port}"\n'
            f'[meta]\n  dir = "{base}/meta"\n'
            f'[data]\n  dir = "{base}/data"\n  wal-dir = "{base}/wal"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            f'[http]\n  bind-address = "{self.host}:{self.port}"\n'
            "  log-enabled = false\n"
            f"  auth-enabled = {'true' if self.auth else 'false'}\n"
            f"{self.http_extra}\n"
        )
        return [find_binary("influxd"), "run", "-config", str(conf)]


@dataclass
class VictoriaMetrics(HttpService):
    """victoria-metrics: a real server that accepts /api/v2/write line protocol."""

    name = "victoria-metrics"
    health_path = "/health"

    def command(self) -> list[str]:
        """The argv with its storage in this run directory."""
        return [
            find_binary("victoria-metrics"),
            f"-storageDataPath={self.run_dir / 'vm-data'}",
            f"-httpListenAddr={self.host}:{self.port}",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]


@dataclass
class SnmpSim(LocalService):
    """snmpsim serving the .snmprec recordings of data_dir on one or more UDP endpoints.

    The community (or SNMPv3 context name) selects the recording: its file stem.
    """

    name = "snmpsim"
    data_dir: Path = Path(".")
    endpoints: tuple[str, ...] = ()
    v3_user: str = ""
    v3_auth_key: str = ""
    v3_priv_key: str = ""
    variation_dir: Path | None = None

    def all_endpoints(self) -> list[str]:
        """Every host:port served (the default one on self.port when none are given)."""
        return list(self.endpoints) or [f"{self.host}:{self.port}"]

    def ready(self) -> bool:
        """Every endpoint's UDP port is taken (by snmpsim: it logs only errors)."""
        return all(_udp_bound(e) for e in self.all_endpoints())

    def command(self) -> list[str]:
        """The responder's argv (SNMPSIM_ALLOW_ROOT is set in its environment)."""
        binary = Path(sys.executable).parent / "snmpsim-command-responder"
        if not binary.exists():
            raise ServiceError("snmpsim is not installed: pip install 'hashwatt[sim]'")
        argv = [str(binary), f"--cache-dir={self.run_dir / 'snmpsim-cache'}", "--log-level=error"]
        if self.variation_dir is not None:
            argv.append(f"--variation-modules-dir={self.variation_dir}")
        # an engine section starts at --v3-engine-id: its data, users and endpoints follow
        argv += ["--v3-engine-id=auto", f"--data-dir={self.data_dir}"]
        if self.v3_user:
            argv += [f"--v3-user={self.v3_user}", f"--v3-auth-key={self.v3_auth_key}",
                     "--v3-auth-proto=SHA", f"--v3-priv-key={self.v3_priv_key}",
                     "--v3-priv-proto=AES"]
        return argv + [f"--agent-udpv4-endpoint={e}" for e in self.all_endpoints()]

    def environment(self) -> dict[str, str]:
        """As root, snmpsim would drop to nobody and lose the Python in root's home."""
        return {**plain_environment(), "SNMPSIM_ALLOW_ROOT": "true"}

    def pick_port(self) -> int:
        """SNMP is UDP."""
        return free_udp_port(self.host)


def _udp_bound(endpoint: str) -> bool:
    host, port = endpoint.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, int(port)))
        except OSError:
            return True
    return False


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that is free on host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
