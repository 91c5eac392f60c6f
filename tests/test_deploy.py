"""The deployable stack, checked statically (no Docker engine here): pinned images, mounted
files that exist, no secret in plain text, provisioning wired to the generated files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hashwatt.config import load_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SECRET_KEY = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|KEY_|INTEGRATION", re.I)
VARIABLE = re.compile(r"^\$\{[A-Z0-9_]+\}$")


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


def test_every_variable_the_stack_needs_is_listed_in_the_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", (DEPLOY / "compose.yaml").read_text()))
    listed = {line.split("=")[0] for line in (DEPLOY / ".env.example").read_text().splitlines()
              if line and not line.startswith("#")}
    assert used <= listed, used - listed
    assert all(line.endswith("=") or line.split("=", 1)[1] in ("north", "admin")
               for line in (DEPLOY / ".env.example").read_text().splitlines()
               if line and not line.startswith("#"))


def test_wall_screens_get_anonymous_viewer_access_only() -> None:
    env = services()["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_grafana_provisions_the_generated_dashboards_and_the_alerting_files() -> None:
    mounts = services()["grafana"]["volumes"]
    assert "../dashboards/generated:/var/lib/grafana/dashboards/hashwatt:ro" in mounts
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/hashwatt.yaml")
                              .read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/hashwatt"
    assert sorted(p.name for p in (DEPLOY / "grafana/provisioning/alerting").glob("*.json")) == [
        "contact-points.json", "mute-timings.json", "policies.json", "rules.json"]


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


def test_the_stack_configs_pass_check_config(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HASHWATT_MQTT_PASSWORD", "x")
    monkeypatch.setenv("HASHWATT_INFLUX_TOKEN", "y")
    cfg = load_config(DEPLOY / "hashwatt.compose.toml")
    assert (cfg.influxdb.api, cfg.mqtt.host) == ("v2", "mosquitto")  # type: ignore[union-attr]
    sim = tmp_path / "hashwatt.sim.toml"
    sim.write_text((DEPLOY / "hashwatt.sim.toml").read_text().replace(
        "/var/lib/hashwatt/inventory.csv", "inventory.csv"))
    from hashwatt.sim.farm import build_rigs, write_inventory
    from hashwatt.sim.pdus import pdus_for

    rigs = build_rigs(50)
    write_inventory(rigs, tmp_path / "inventory.csv", pdus_for(rigs))
    assert len(load_config(sim).pdus) == 5


def test_no_env_file_with_secrets_is_committed() -> None:
    assert not (DEPLOY / ".env").exists()
