"""A rig and a collector that go silent for two days keep paging (exporters/roster.py), on a
real influxd, with the rules evaluated as Grafana does (tests/grafana.py): what "rig offline"
and "collector silent" return 1 h, 25 h and 49 h after the silence began, across a bridge
restart, and after `hashwatt forget`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from dashboards.alerts import MARKS_S
from dashboards.build import ALERTING, DASHBOARDS
from exporters.lineproto import Point, encode
from exporters.roster import RosterKeeper, forget
from hashwatt.influxql import InfluxQL
from hashwatt.names import Roster
from tests.grafana import evaluate_rule, expand, frames, run_panel

HOUR = 3600
NOW = time.time()
# the silence begins 50 h before the test's clock, so every checkpoint and the forget after
# the last one lie in the past: nothing is written "in the future" of an evaluation
T0 = NOW - 50 * HOUR
TAGS = "site=north,rack=R01,model=S19\\ Pro"


def rule(uid: str) -> dict[str, Any]:
    groups = json.loads((ALERTING / "rules.json").read_text())["groups"]
    return next(r for g in groups for r in g["rules"] if r["uid"] == uid)


def post(db: InfluxQL, body: bytes) -> None:
    resp = db.client.post("/write", params={"db": db.database, "precision": "ms"},
                          content=body)
    assert resp.status_code == 204, resp.text


def writer(db: InfluxQL) -> Any:
    def write(points: Sequence[Point]) -> None:  # as a line-protocol sink writes them
        post(db, encode(points))
    return write


def readings(db: InfluxQL, at: float, rigs: dict[str, str], collectors: list[str]) -> None:
    """One good poll of each rig (rig -> its collector; "r3" in maintenance) and one cycle of
    each collector at `at`."""
    lines = []
    for rig, collector in rigs.items():
        extra = ",maintenance=yes" if rig == "r3" else ""
        lines.append(f"rig,{TAGS},rig={rig},collector={collector}{extra} up=1i,online=true "
                     f"{int(at * 1000)}")
    lines += [f"collector,site=north,collector={c} cycle_s=2.5,online=true {int(at * 1000)}"
              for c in collectors]
    post(db, "\n".join(lines).encode())


def offline(db: InfluxQL, at: float) -> dict[str, float]:
    """What the rule's query returns, per rig (frames as Grafana makes them, reduced `last`)."""
    r = rule("hw-rig-offline")
    query = expand(r["data"][0]["model"]["query"], at - MARKS_S, at)
    return {dict(f.labels)["rig"]: f.values[-1] for f in frames(db, query)}


def cycles(db: InfluxQL, at: float) -> dict[str, float]:
    r = rule("hw-collector-silent")
    query = expand(r["data"][0]["model"]["query"], at - MARKS_S, at)
    return {dict(f.labels)["collector"]: f.values[-1] for f in frames(db, query)}


def firing(db: InfluxQL, uid: str, key: str, at: float) -> dict[str, float]:
    return {dict(f.labels)[key]: f.value for f in evaluate_rule(db, rule(uid), at)}


def silent(db: InfluxQL, name: str, title: str, key: str, at: float) -> dict[str, int]:
    board = json.loads((DASHBOARDS / f"{name}.json").read_text())
    [rows] = run_panel(db, board, title, at)
    return {r[key]: r["silent for"] for r in rows}


def test_a_rig_and_a_collector_silent_for_two_days_keep_paging(influx_db: InfluxQL) -> None:
    db, write = influx_db, writer(influx_db)
    everyone = {"r1": "c1", "r2": "c2", "r3": "c2"}
    # before T0 everything reports; at T0 collector c1 dies and with it rig r1's readings;
    # r3 is in maintenance and stops reporting too (its marks keep that tag: no page)
    for age in (240, 180, 120, 60, 0):
        readings(db, T0 - age, everyone, ["c1", "c2"])
    keeper = RosterKeeper(db, write)
    keeper.run(T0 + 30)
    seen: dict[int, tuple[dict[str, float], dict[str, float]]] = {}
    for hour in range(1, 50):
        t = T0 + hour * HOUR
        readings(db, t - 120, {"r2": "c2"}, ["c2"])
        readings(db, t - 60, {"r2": "c2"}, ["c2"])
        if hour == 25:  # the bridge restarts: its roster comes back from the marks
            keeper = RosterKeeper(db, write)
        assert keeper.run(t - 30) == 5  # r1, r2, r3, c1, c2 (one mark each)
        if hour in (1, 25, 49):
            seen[hour] = (offline(db, t), cycles(db, t))
            assert firing(db, "hw-rig-offline", "rig", t) == {"r1": 3.0}
            assert firing(db, "hw-collector-silent", "collector", t) == {"c1": 0.0}
            # and the dashboards list them, silent since T0 as of the mark at t - 30 s
            assert silent(db, "farm-overview", "Rigs silent (no reading: collector down?)",
                          "rig", t) == {"r1": hour * HOUR - 30}
            assert silent(db, "collector-health", "Collectors silent", "collector", t) == {
                "c1": hour * HOUR - 30}
    # by hand: r1 has no reading in 5 min and a mark: 0 bad + 3 - 3 * 0 seen = 3; r2 polled
    # twice, both good: 0 + 3 - 3 * 1 = 0; r3's marks carry maintenance=yes: no row at all.
    # c1: 0 cycles in 5 min (its mark adds 0); c2: the two cycles of the last 5 minutes
    for hour in (1, 25, 49):
        assert seen[hour] == ({"r1": 3.0, "r2": 0.0}, {"c1": 0.0, "c2": 2.0}), hour

    # a person retires rig r1 and collector c1: the bridge stops carrying them, and once the
    # marks written before fall out of the rules' range (three intervals) nothing fires
    forgot = T0 + 49 * HOUR + 600
    assert forget(db, write, measurement="rig", site="north", name="r1", now_s=forgot) == 1
    assert forget(db, write, measurement="collector", site="north", name="c1",
                  now_s=forgot) == 1
    t = forgot + MARKS_S + 60
    readings(db, t - 120, {"r2": "c2"}, ["c2"])
    assert keeper.run(forgot + 60) == 3  # r2, r3, c2
    readings(db, t - 60, {"r2": "c2"}, ["c2"])
    assert offline(db, t) == {"r2": 0.0} and cycles(db, t) == {"c2": 2.0}
    assert firing(db, "hw-rig-offline", "rig", t) == {}
    assert firing(db, "hw-collector-silent", "collector", t) == {}
    # and a bridge started afterwards does not bring them back
    assert RosterKeeper(db, write).run(t) == 3


def test_a_forgotten_rig_that_reports_again_is_carried_again(influx_db: InfluxQL) -> None:
    db, write = influx_db, writer(influx_db)
    start = NOW - 3 * HOUR
    readings(db, start, {"r1": "c1"}, ["c1"])
    keeper = RosterKeeper(db, write)
    assert keeper.run(start + 60) == 2
    assert forget(db, write, measurement="rig", site="north", name="r1",
                  now_s=start + 120) == 1
    assert keeper.run(start + 400) == 1  # c1 only
    readings(db, start + 500, {"r1": "c1"}, ["c1"])  # put back in service
    assert keeper.run(start + 700) == 2
    marks = db.rows(f'SELECT "{Roster.LAST_SEEN}", "{Roster.FORGOTTEN}" FROM "rig" WHERE '
                    f'"{Roster.LAST_SEEN}" > 0 ORDER BY time DESC LIMIT 1')
    assert marks[0][Roster.LAST_SEEN] == int((start + 500) * 1000) / 1000
    assert marks[0][Roster.FORGOTTEN] == 0


def test_a_moved_rig_is_carried_with_its_new_rack_only(influx_db: InfluxQL) -> None:
    db, write = influx_db, writer(influx_db)
    start = NOW - 2 * HOUR
    post(db, f"rig,site=north,rig=r1,rack=R01 up=1i {int(start * 1000)}\n"
             f"rig,site=north,rig=r1,rack=R07 up=1i {int((start + 60) * 1000)}".encode())
    assert RosterKeeper(db, write).run(start + 120) == 1
    rows = db.rows(f'SELECT last("{Roster.LAST_SEEN}") FROM "rig" GROUP BY "rack"')
    assert [(r["rack"], r["last"]) for r in rows if r["last"] is not None] == [
        ("R07", int((start + 60) * 1000) / 1000)]


def test_hashwatt_forget_marks_what_it_knows_and_says_what_it_does_not(
        influx_db: InfluxQL, tmp_path: Any, capsys: Any) -> None:
    from hashwatt.cli import main

    url = str(influx_db.client.base_url).rstrip("/")
    config = tmp_path / "hashwatt.toml"
    config.write_text(f'state_dir = "."\n[site]\nname = "north"\n[influxdb]\nurl = "{url}"\n'
                      f'database = "{influx_db.database}"\n')
    readings(influx_db, NOW - 600, {"r1": "c1"}, ["c1"])
    assert main(["forget", str(config), "--rig", "r1", "--collector", "c1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "forgotten: rig r1 (site north)", "forgotten: collector c1 (site north)"]
    assert RosterKeeper(influx_db, writer(influx_db)).run(time.time()) == 0
    assert main(["forget", str(config), "--rig", "r9"]) == 2
    assert "not known in the last 72 h at site north: rig r9" in capsys.readouterr().err
