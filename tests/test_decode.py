"""The bridge's decoder: contract validation, derived figures, and reasons for setting aside."""

from __future__ import annotations

import json

import pytest

from exporters.decode import Limits, Receipt, Rejected, decode, decode_message, receipt_of
from exporters.lineproto import DROPPED, Point, encode

NOW = 1_790_000_000.0
TOPIC = "hashwatt/v1/north/rig/r01-s01"


def reading(**overrides: object) -> dict:
    doc = {"schema": 1, "kind": "rig", "ts_ms": int(NOW * 1000), "site": "north",
           "rig": "r01-s01", "collector": "c1", "rack": "R01", "customer": "acme",
           "make": "AntMiner", "model": "S19 Pro", "firmware": "Stock", "online": True,
           "hashrate_ths": 100.0, "expected_hashrate_ths": 110.0, "power_w": 3250.0,
           "power_source": "nominal", "temp_max_c": 80.0, "temp_limit_c": 95.0,
           "fans_rpm": [4000, 3900, 0, 4100], "boards_total": 3, "uptime_s": 3600,
           "boards": [{"board": 0, "hashrate_ths": 50.0, "chip_temp_c": 80.0,
                       "board_temp_c": 65.0, "chips": 114},
                      {"board": 1, "hashrate_ths": 50.0, "chip_temp_c": 79.0,
                       "board_temp_c": 64.0, "chips": 114},
                      {"board": 2, "hashrate_ths": 0.0, "chips": 0}]}
    doc.update(overrides)
    return doc


def run(doc: object, topic: str = TOPIC) -> list:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return decode(topic, payload, prefix="hashwatt", limits=Limits(), now=NOW)


def reason(doc: object, topic: str = TOPIC) -> str:
    with pytest.raises(Rejected) as err:
        run(doc, topic)
    return str(err.value)


def test_a_reading_gives_a_rig_point_with_efficiency_and_temperature_margin() -> None:
    rig = run(reading())[0]
    assert rig.measurement == "rig"
    assert rig.ts_ms == int(NOW * 1000)
    assert rig.fields["efficiency_j_th"] == 32.5
    assert rig.fields["temp_margin_c"] == 15.0
    assert rig.fields["fan_min_rpm"] == 0
    assert rig.fields["boards_ok"] == 2
    assert rig.tags == {"site": "north", "rig": "r01-s01", "rack": "R01", "customer": "acme",
                        "make": "AntMiner", "model": "S19 Pro", "firmware": "Stock", "slot": ""}


def test_each_board_becomes_a_rig_board_point() -> None:
    boards = [p for p in run(reading()) if p.measurement == "rig_board"]
    assert [(p.tags["board"], p.fields["hashrate_ths"]) for p in boards] == [
        ("0", 50.0), ("1", 50.0), ("2", 0.0)]


def test_board_lines_carry_the_rigs_tags_sorted_with_the_board_first() -> None:
    board = run(reading(slot=4))[1]
    assert board.line().rsplit(" ", 2)[0] == (
        "rig_board,board=0,customer=acme,firmware=Stock,make=AntMiner,model=S19\\ Pro,"
        "rack=R01,rig=r01-s01,site=north,slot=4")
    assert board.line() == board._replace(tags_line="").line()


def test_integers_in_float_fields_are_written_as_floats() -> None:
    rig = run(reading(power_w=3250, hashrate_ths=100))[0]
    assert isinstance(rig.fields["power_w"], float)


def test_an_offline_reading_has_no_efficiency() -> None:
    doc = {k: v for k, v in reading(online=False, error="timeout").items()
           if k not in ("hashrate_ths", "power_w", "boards")}
    rig = run(doc)[0]
    assert rig.fields["online"] is False and "efficiency_j_th" not in rig.fields


@pytest.mark.parametrize(("payload", "why"), [
    (b"not json", "schema: payload: Invalid JSON"),
    (b'{"schema": 1, "kind": "rig"', "schema: payload: Invalid JSON"),
    (json.dumps(reading(hashrate_ths="100")).encode(), "schema: hashrate_ths: Input should be"),
    (b'{"schema":1,"kind":"rig","ts_ms":1790000000000,"site":"north","rig":"r01-s01",'
     b'"collector":"c1","online":true,"hashrate_ths":NaN}', "schema: hashrate_ths"),
    (json.dumps(reading(schema=2)).encode(), "schema: schema: Input should be 1"),
    (json.dumps(reading(online="yes")).encode(), "schema: online: Input should be a valid"),
])
def test_a_malformed_payload_is_set_aside_with_its_reason(payload: bytes, why: str) -> None:
    assert reason(payload).startswith(why)


def test_a_reading_from_far_in_the_future_is_set_aside() -> None:
    assert reason(reading(ts_ms=int((NOW + 30 * 86400) * 1000))).endswith("s in the future")


def test_an_oversized_payload_is_set_aside() -> None:
    assert reason(b"x" * 300_000).startswith("payload of 300000 bytes exceeds")


def test_a_rig_id_that_differs_from_the_topic_is_set_aside() -> None:
    assert "differs from" in reason(reading(rig="r01-s02"))


@pytest.mark.parametrize("topic", ["hashwatt/v1/north/rig/r 1", "hashwatt/v1/north/rig/#",
                                   "other/v1/north/rig/r01-s01", "hashwatt/v1/north/fan/x"])
def test_a_topic_outside_the_contract_is_set_aside(topic: str) -> None:
    reason(reading(), topic)


def test_a_collector_status_gives_only_the_online_state() -> None:
    # a retained status is published again at every reconnect: its stats would be a phantom
    # cycle at a new time, so only the cycle message (spooled, stamped once) carries them
    status = {"schema": 1, "kind": "collector", "site": "north", "collector": "c1",
              "state": "online", "ts_ms": int(NOW * 1000),
              "stats": {"cycle_s": 2.5, "rigs_total": 10, "rigs_ok": 9, "rigs_failed": 1,
                        "rigs_timeout": 0, "identified": 0, "published": 10}}
    [point] = run(status, "hashwatt/v1/north/collector/c1/status")
    assert point.fields == {"online": True}


def test_a_cycle_message_gives_a_collector_point_at_the_cycles_time_with_its_receipt() -> None:
    cycle = {"schema": 1, "kind": "cycle", "site": "north", "collector": "c1",
             "ts_ms": int(NOW * 1000) - 5000, "spool": "ab12", "seq": 77,
             "stats": {"cycle_s": 2.5, "rigs_total": 10, "rigs_ok": 9, "rigs_failed": 1,
                       "rigs_timeout": 0, "identified": 0, "published": 10,
                       "broker_connected": False, "spool_memory": 3}}
    points, receipt = decode_message("hashwatt/v1/north/collector/c1/cycle",
                                     json.dumps(cycle).encode(), prefix="hashwatt",
                                     limits=Limits(), now=NOW)
    [point] = points
    assert point.ts_ms == int(NOW * 1000) - 5000
    assert (point.fields["rigs_ok"], point.fields["cycle_s"]) == (9, 2.5)
    assert (point.fields["broker_connected"], point.fields["spool_memory"]) == (False, 3)
    assert receipt == Receipt("north", "c1", "ab12", 77)


def test_a_reading_names_its_receipt_and_an_old_one_has_none() -> None:
    payload = json.dumps(reading(spool="0f", seq=5)).encode()
    assert decode_message(TOPIC, payload, prefix="hashwatt", limits=Limits(),
                          now=NOW).receipt == Receipt("north", "c1", "0f", 5)
    assert decode_message(TOPIC, json.dumps(reading()).encode(), prefix="hashwatt",
                          limits=Limits(), now=NOW).receipt is None


def test_a_set_aside_message_still_names_its_receipt() -> None:
    bad = json.dumps(reading(spool="0f", seq=9, hashrate_ths="fast")).encode()
    assert "hashrate_ths" in reason(json.loads(bad))
    assert receipt_of(TOPIC, bad, "hashwatt") == Receipt("north", "c1", "0f", 9)
    assert receipt_of(TOPIC, b"[1, 2]", "hashwatt") is None
    assert receipt_of(TOPIC, b"\xff{", "hashwatt") is None


def test_an_infinite_efficiency_is_left_out_and_counted_not_fatal() -> None:
    # 1e308 W / 1e-300 TH/s overflows to inf: the poison message
    before = DROPPED.count
    [rig, *_] = run(reading(power_w=1e308, hashrate_ths=1e-300, boards=[]))
    assert "efficiency_j_th" not in rig.fields and rig.fields["power_w"] == 1e308
    assert DROPPED.count == before + 1
    encode([rig])  # encodes: no inf reaches line protocol


def test_an_absurd_phase_load_is_left_out_and_counted() -> None:
    pdu = {"schema": 1, "kind": "pdu", "ts_ms": int(NOW * 1000), "site": "north",
           "pdu": "p1", "collector": "c1", "online": True,
           "phases": [{"phase": "L1", "current_a": 1e308, "rating_a": 1e-300},
                      {"phase": "L2", "current_a": 8.0, "rating_a": 16.0}]}
    before = DROPPED.count
    points = run(pdu, "hashwatt/v1/north/pdu/p1")
    phases = {p.tags["phase"]: p.fields for p in points if p.measurement == "pdu_phase"}
    assert "load_pct" not in phases["L1"] and phases["L1"]["current_a"] == 1e308
    assert phases["L2"]["load_pct"] == 50.0  # 8 A of a 16 A breaker
    assert DROPPED.count == before + 1
    encode(points)


def test_a_non_finite_field_that_reaches_the_encoder_is_left_out_and_counted() -> None:
    before = DROPPED.count
    line = encode([Point("m", {"a": "b"}, {"x": float("inf"), "y": 1.5}, 1000)])
    assert line == b"m,a=b y=1.5 1000\n" and DROPPED.count == before + 1
    with pytest.raises(ValueError):
        encode([Point("m", {}, {"x": float("nan")}, 1000)])


def test_boards_whose_hashrate_is_unknown_give_no_boards_ok_rather_than_zero() -> None:
    unknown = [{"board": i, "chip_temp_c": 70.0} for i in range(3)]
    rig = run(reading(boards=unknown))[0]
    assert "boards_ok" not in rig.fields and rig.fields["boards_total"] == 3
