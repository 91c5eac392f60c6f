"""The site's timezone reaches Grafana: deploy/grafana/entrypoint.sh, run with /bin/sh as both
compose Grafanas run it, writes `[site] timezone` of the config it is given into every
dashboard and the maintenance mute timing; "cost today" then starts at the site's midnight
(Grafana's dateMath rounds now/d in the dashboard's timezone)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboards.build import ALERTING, DASHBOARDS
from tests.grafana import relative_start

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
WALL_BOARDS = ("farm-overview", "power", "rig-detail", "collector-health")


def provision(tmp_path: Path, *, wall: bool = False, config: str | None = None,
              **env: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None, str]:
    """Run the entrypoint as compose does (paths under tmp_path); the provisioned dashboards,
    mute timings (None on the wall screen) and stderr."""
    boards = tmp_path / "mounted-dashboards"
    boards.mkdir(parents=True)
    for path in DASHBOARDS.glob("*.json"):  # the wall screen mounts four files, one by one
        if not wall or path.stem in WALL_BOARDS:
            (boards / path.name).write_text(path.read_text())
    cfg = tmp_path / "hashwatt.toml"
    if config is not None:
        cfg.write_text(config)
    out, copies = tmp_path / "provisioning", tmp_path / "dashboards"
    src = DEPLOY / ("grafana/wall/provisioning" if wall else "grafana/provisioning")
    result = subprocess.run(
        ["/bin/sh", str(DEPLOY / "grafana/entrypoint.sh"), "true"],
        env={"PATH": "/usr/bin:/bin", "GF_PATHS_PROVISIONING": str(out),
             "HASHWATT_PROVISIONING_SRC": str(src), "HASHWATT_DASHBOARDS_SRC": str(boards),
             "HASHWATT_DASHBOARDS": str(copies), "HASHWATT_CONFIG": str(cfg), **env},
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    dashboards = {p.stem: json.loads(p.read_text()) for p in copies.glob("*.json")}
    mute = out / "alerting/mute-timings.json"
    return dashboards, json.loads(mute.read_text()) if mute.exists() else None, result.stderr


def location(mute: dict[str, Any] | None) -> str:
    assert mute is not None
    [timing] = mute["muteTimes"]
    [interval] = timing["time_intervals"]
    return str(interval["location"])


def test_both_compose_grafanas_get_the_sites_timezone_from_its_config(tmp_path: Path) -> None:
    config = (DEPLOY / "hashwatt.compose.toml").read_text()  # [site] timezone = Europe/Berlin
    office, mute, stderr = provision(tmp_path / "office", config=config)
    wall, wall_mute, wall_err = provision(tmp_path / "wall", wall=True, config=config)
    assert sorted(office) == sorted(p.stem for p in DASHBOARDS.glob("*.json"))
    assert sorted(wall) == sorted(WALL_BOARDS) and wall_mute is None
    for board in [*office.values(), *wall.values()]:
        assert board["timezone"] == "Europe/Berlin", board["title"]
    assert location(mute) == "Europe/Berlin"
    assert stderr.strip() == "hashwatt: no alert receiver configured (see deploy/.env.example): " \
                             "alerts show in Grafana only" and wall_err == ""
    # nothing else changed: the copies are the generated dashboards but for their timezone
    for name, board in office.items():
        generated = json.loads((DASHBOARDS / f"{name}.json").read_text())
        assert generated["timezone"] == "browser"
        assert {**board, "timezone": "browser"} == generated, name


@pytest.mark.parametrize("config, env, zone", [
    # TOML as hashwatt reads it: single quotes, a comment after the value, another table's
    # "timezone" key before [site]
    ('[report]\ntimezone = "Asia/Tokyo"\n[site] # here\nname = "east"\n'
     "timezone = 'America/New_York'  # the site's clock\n", {}, "America/New_York"),
    # hashwatt's own default when [site] has no timezone
    ('[site]\nname = "east"\n', {}, "UTC"),
    # the environment overrides the file
    ('[site]\nname = "east"\ntimezone = "Asia/Tokyo"\n',
     {"HASHWATT_SITE_TIMEZONE": "Asia/Kathmandu"}, "Asia/Kathmandu"),
])
def test_the_timezone_is_read_as_the_config_says(tmp_path: Path, config: str,
                                                 env: dict[str, str], zone: str) -> None:
    boards, mute, _ = provision(tmp_path, config=config, **env)
    assert {b["timezone"] for b in boards.values()} == {zone}
    assert location(mute) == zone


@pytest.mark.parametrize("config, env, said", [
    (None, {}, "no site timezone"),
    ('[site]\nname = "east"\ntimezone = "x\\"; rm -rf /"\n', {}, "is not an IANA name"),
])
def test_without_a_usable_timezone_dashboards_keep_the_viewers_clock_and_grafana_starts(
        tmp_path: Path, config: str | None, env: dict[str, str], said: str) -> None:
    boards, mute, stderr = provision(tmp_path, config=config, **env)
    assert {b["timezone"] for b in boards.values()} == {"browser"}
    assert location(mute) == "UTC"
    assert [line for line in stderr.splitlines() if "timezone" in line and said in line]


def test_cost_today_starts_at_the_sites_midnight(tmp_path: Path) -> None:
    """now/d rounds in the provisioned dashboard's timezone, derived here with zoneinfo."""
    boards, _, _ = provision(tmp_path, config=(DEPLOY / "hashwatt.compose.toml").read_text())
    board = boards["farm-overview"]
    [panel] = [p for p in board["panels"] if p["title"] == "Cost today ($currency)"]
    assert panel["timeFrom"] == "now/d"
    # 2026-10-25 is the autumn DST change in Berlin; 10:00 UTC is 11:00 CET that day
    now = dt.datetime(2026, 10, 25, 10, 0, tzinfo=dt.UTC).timestamp()
    midnight = dt.datetime(2026, 10, 25, tzinfo=ZoneInfo("Europe/Berlin"))
    assert midnight.utcoffset() == dt.timedelta(hours=2)  # CEST until 03:00
    start = relative_start(panel["timeFrom"], now, board["timezone"])
    assert start == midnight.timestamp()
    # 11:00 on the clock, but 12 hours since midnight: the clock went back an hour at 03:00
    assert start == now - 12 * 3600


def test_the_committed_mute_timing_is_utc_until_provisioned() -> None:
    mute = json.loads((ALERTING / "mute-timings.json").read_text())
    assert location(mute) == "UTC"
