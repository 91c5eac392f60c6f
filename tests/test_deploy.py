"""The deployable stack, checked statically (no Docker engine here): pinned images, mounted
files that exist, no secret in plain text, provisioning wired to the generated files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hashwatt.config import load_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SECRET_KEY = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|KEY_|INTEGRATION", re.I)
VARIABLE = re.compile(r"^\$\{[A-Z0-9_]+(:-)?\}$")  # a variable, an empty default at most


def services() -> dict[str, dict[str, Any]]:
    return dict(COMPOSE["services"])


@pytest.mark.parametrize("name", sorted(services()))
def test_every_image_is_pinned_to_a_version(name: str) -> None:
    image = services()[name]["image"]
    repo, _, tag = image.rpartition(":")
    assert repo and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), image


def test_the_dockerfile_base_image_is_pinned() -> None:
    first = (DEPLOY / "Dockerfile").read_text().splitlines()[0]
    assert re.match(r"FROM python:\d+\.\d+\.\d+-", first), first


@pytest.mark.parametrize("name", sorted(services()))
def test_every_mounted_file_exists(name: str) -> None:
    for volume in services()[name].get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / source).exists(), f"{name}: {source}"


@pytest.mark.parametrize("name", sorted(services()))
def test_no_secret_is_written_in_plain_text(name: str) -> None:
    for key, value in (services()[name].get("environment") or {}).items():
        if SECRET_KEY.search(key):
            assert VARIABLE.match(str(value)), f"{name}: {key} must come from the environment"


REF = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def env_example() -> dict[str, str]:
    """.env.example as compose reads it (KEY=value lines, comments on their own lines)."""
    out = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def filled_env() -> dict[str, str]:
    """.env.example filled as the README says: every empty value gets a password, the
    optional receivers stay empty."""
    optional = {"HASHWATT_PAGERDUTY_KEY", "HASHWATT_TELEGRAM_BOT_TOKEN",
                "HASHWATT_TELEGRAM_CHAT_ID", "HASHWATT_ALERT_EMAILS",
                "HASHWATT_ALERT_WEBHOOK_URL"}
    return {k: v or ("" if k in optional or k.startswith("GF_SMTP_") else f"pw-{k.lower()}")
            for k, v in env_example().items()}


def service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """A service's environment after compose's ${VAR} / ${VAR:-default} interpolation."""
    def one(m: re.Match[str]) -> str:
        value = env.get(m.group(1), "")
        return value if value or m.group(2) is None else m.group(2)

    return {k: REF.sub(one, str(v)) for k, v in (services()[name].get("environment") or {}).items()}


def test_every_variable_the_stack_needs_is_listed_in_the_env_example() -> None:
    used = {m.group(1) for m in REF.finditer((DEPLOY / "compose.yaml").read_text())}
    assert used <= set(env_example()), used - set(env_example())
    defaults = {"MQTT_COLLECTOR_USER": "north", "INFLUXDB_ADMIN_USER": "admin",
                "GRAFANA_ADMIN_USER": "admin", "GF_SMTP_ENABLED": "false"}
    assert {k: v for k, v in env_example().items() if v} == defaults  # no secret ships


def test_the_mosquitto_entrypoint_finds_what_it_requires() -> None:
    """entrypoint.sh stops on ${VAR:?} for these; mosquitto.conf reads the files it writes."""
    script = (DEPLOY / "mosquitto/entrypoint.sh").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", script))
    env = service_env("mosquitto", filled_env())
    assert required == {"MQTT_COLLECTOR_USER", "MQTT_COLLECTOR_PASSWORD", "MQTT_BRIDGE_PASSWORD"}
    assert all(env[v] for v in required)
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    assert "password_file /mosquitto/auth/passwd" in conf and "acl_file /mosquitto/auth/acl" in conf
    mounts = services()["mosquitto"]["volumes"]
    assert "./mosquitto/acl:/mosquitto/config/acl:ro" in mounts
    assert services()["mosquitto"]["entrypoint"] == ["/bin/sh", "/mosquitto/config/entrypoint.sh"]


def test_influxdb_setup_mode_and_the_init_script_get_what_they_require() -> None:
    """influxdata-docker influxdb/2.7 entrypoint.sh: setup mode requires
    DOCKER_INFLUXDB_INIT_USERNAME, _PASSWORD, _ORG and _BUCKET (and influx setup wants a
    password of at least 8 characters); our init script stops on ${VAR:?} for its logins."""
    env = service_env("influxdb", filled_env())
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for key in ("USERNAME", "PASSWORD", "ORG", "BUCKET", "ADMIN_TOKEN"):
        assert env[f"DOCKER_INFLUXDB_INIT_{key}"], key
    assert len(env["DOCKER_INFLUXDB_INIT_PASSWORD"]) >= 8
    script = (DEPLOY / "influxdb/init/10-hashwatt.sh").read_text()
    for var in re.findall(r"\$\{(\w+):\?", script):
        assert env[var], var
    assert "influx v1 auth create" in script and "--password" in script
    syntax = subprocess.run(["bash", "-n", str(DEPLOY / "influxdb/init/10-hashwatt.sh")])
    assert syntax.returncode == 0


def uncommented(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines()
                     if not line.lstrip().startswith("#"))


def test_grafana_starts_with_only_the_required_values_filled(tmp_path: Path) -> None:
    """With no receiver filled in, the entrypoint provisions no contact point (each would fail
    grafana/alerting's validation) and every ${VAR} a provisioning file uses is set."""
    env = service_env("grafana", filled_env())
    out = tmp_path / "provisioning"
    result = subprocess.run(["/bin/sh", str(DEPLOY / "grafana/entrypoint.sh"), "true"],
                            env={**env, "PATH": "/usr/bin:/bin", "GF_PATHS_PROVISIONING": str(out),
                                 "HASHWATT_PROVISIONING_SRC": str(DEPLOY / "grafana/provisioning")},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert not (out / "alerting/contact-points.yaml").exists()
    for path in out.rglob("*.y*ml"):
        for var in REF.findall(uncommented(path)):
            assert env.get(var[0]), f"{path.name}: ${{{var[0]}}} is empty in Grafana's environment"
    wall = service_env("wallscreen", filled_env())
    for path in (DEPLOY / "grafana/wall/provisioning").rglob("*.yaml"):
        for var in REF.findall(uncommented(path)):
            assert wall.get(var[0]), f"{path.name}: ${{{var[0]}}}"


def test_only_the_wall_screen_is_anonymous_and_it_serves_no_finance() -> None:
    office, wall = services()["grafana"]["environment"], services()["wallscreen"]["environment"]
    assert office["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert wall["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert wall["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = " ".join(services()["wallscreen"]["volumes"])
    assert "finance" not in mounts and "dashboards/generated:" not in mounts
    # secrets the wall screen has: its own InfluxDB login and Grafana's admin, nothing else
    assert {k for k in wall if SECRET_KEY.search(k)} == {"GF_SECURITY_ADMIN_PASSWORD",
                                                         "INFLUXDB_WALL_PASSWORD"}
    [source] = yaml.safe_load((DEPLOY / "grafana/wall/provisioning/datasources/influxdb.yaml")
                              .read_text())["datasources"]
    assert (source["user"], source["jsonData"]["dbName"]) == ("hashwatt-wall", "hashwatt")
    init = (DEPLOY / "influxdb/init/10-hashwatt.sh").read_text()
    assert 'login hashwatt-wall "$INFLUXDB_WALL_PASSWORD" --read-bucket "$raw"\n' in init


@pytest.mark.parametrize("name, role", [("bridge", "bridge"), ("collector", "collector"),
                                        ("collector-sim", "collector")])
def test_each_hashwatt_service_starts_with_its_own_secrets_only(
        name: str, role: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = service_env(name, filled_env())
    for key in list(__import__("os").environ):
        if key.startswith("HASHWATT_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)  # the container has none
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    source = DEPLOY / ("hashwatt.sim.toml" if name == "collector-sim" else "hashwatt.compose.toml")
    path = tmp_path / "hashwatt.toml"
    path.write_text(source.read_text().replace("/var/lib/hashwatt/inventory.csv", "inv.csv"))
    (tmp_path / "inv.csv").write_text("id,address\n")
    (tmp_path / "inventory.sample.csv").write_text((DEPLOY / "inventory.sample.csv").read_text())
    cfg = load_config(path, role)
    user, password = cfg.mqtt_login(role)  # type: ignore[arg-type]
    assert (user, password) == ({"bridge": "hashwatt-bridge"}.get(role, "north"),
                                filled_env()[f"MQTT_{role.upper()}_PASSWORD"])
    assert cfg.state_directory() == Path("/var/lib/hashwatt")
    assert any(v.endswith(":/var/lib/hashwatt") for v in services()[name]["volumes"]), name
    if role == "bridge":
        assert cfg.secret(cfg.influxdb.password) == filled_env()["INFLUXDB_BRIDGE_PASSWORD"]  # type: ignore[union-attr]


def test_the_systemd_units_keep_state_in_a_state_directory() -> None:
    rollup = (DEPLOY / "systemd/hashwatt-rollup.service").read_text()
    assert "EnvironmentFile=/etc/hashwatt/rollup.env" in rollup  # the InfluxDB login only
    for unit in ("hashwatt-collector.service", "hashwatt-bridge.service"):
        text = (DEPLOY / "systemd" / unit).read_text()
        assert "StateDirectory=hashwatt" in text and "ProtectSystem=strict" in text
        role = unit.split("-")[1].split(".")[0]
        assert f"EnvironmentFile=/etc/hashwatt/{role}.env" in text


def test_grafana_provisions_the_generated_dashboards_and_the_alerting_files() -> None:
    mounts = services()["grafana"]["volumes"]
    # entrypoint.sh copies them to the provider's path with the site's timezone written in
    assert "../dashboards/generated:/etc/hashwatt/grafana/dashboards:ro" in mounts
    assert "./hashwatt.compose.toml:/etc/hashwatt/hashwatt.toml:ro" in mounts
    assert "./grafana/provisioning:/etc/hashwatt/grafana/provisioning:ro" in mounts
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/hashwatt.yaml")
                              .read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/hashwatt"
    assert sorted(p.name for p in (DEPLOY / "grafana/provisioning/alerting").glob("*")) == [
        "mute-timings.json", "rules.json"]


def test_the_broker_refuses_anonymous_clients_and_keeps_long_queues() -> None:
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "acl_file" in conf
    assert int(re.search(r"max_queued_messages (\d+)", conf).group(1)) >= 1_000_000  # type: ignore[union-attr]


def test_a_collector_may_write_only_under_its_own_site_and_the_bridge_only_receipts() -> None:
    acl = [line for line in (DEPLOY / "mosquitto/acl").read_text().splitlines()
           if line and not line.startswith("#")]
    writes = [line for line in acl if line.startswith("pattern write")]
    assert writes and all(line.split()[2].startswith("hashwatt/v1/%u/") for line in writes)
    assert "topic read hashwatt/v1/#" in acl and not [a for a in acl if "readwrite" in a]
    # stored receipts: the bridge writes them, a collector reads only its own site's
    assert "topic write hashwatt/v1/+/collector/+/stored" in acl
    assert "pattern read hashwatt/v1/%u/collector/+/stored" in acl
    assert [a for a in acl if a.startswith("topic write")] == [
        "topic write hashwatt/v1/+/collector/+/stored"]


def test_no_env_file_with_secrets_is_committed() -> None:
    assert not (DEPLOY / ".env").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own checker (the units as shipped; only the binaries they start are
    pointed at ones that exist here)."""
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text().replace("/opt/hashwatt/.venv/bin/hashwatt", sys.executable)
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    assert len(units) >= 3
    run = subprocess.run(["systemd-analyze", "verify", "--man=no", *units],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr
