"""Local mosquitto, influxd and victoria-metrics processes for the demo and the tests.

Each one runs as an ordinary child process in a directory of its own, on free loopback
ports, never on the default ports and never as a shared system service.
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

APT_PACKAGES = {"mosquitto": "mosquitto", "influxd": "influxdb",
                "victoria-metrics": "victoria-metrics"}
SEARCH_PATH = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]


class ServiceError(RuntimeError):
    """A local service could not be found or started."""


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

    def start(self, timeout: float = 30.0) -> Self:
        """Start the process and wait until it answers."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        argv = self.command()
        log = (self.run_dir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.run_dir,
                                     start_new_session=True)
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

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the service's log, for error messages."""
        path = self.run_dir / f"{self.name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Mosquitto(LocalService):
    """A mosquitto broker with persistence and queue limits sized for long outages."""

    name = "mosquitto"
    max_queued_messages: int = 1_000_000

    def command(self) -> list[str]:
        """Write mosquitto.conf and return the argv."""
        data = self.run_dir / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            # started as root, mosquitto would switch to its own user and lose the run dir
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            f"max_queued_messages {self.max_queued_messages}\n"
            "max_queued_bytes 0\n"
            "max_inflight_messages 0\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        return [find_binary("mosquitto"), "-c", str(conf)]


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
