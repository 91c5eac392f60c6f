"""Exporter benchmark: messages and points per CPU-second into a real influxd (its own
process, its CPU not counted), measured three ways in one run:

- baseline: what a do-it-yourself bridge does — json.loads, influxdb-client Point objects,
  to_line_protocol, no validation — written through the same sink;
- hashwatt's pipeline: the bridge's decode (schema validation, derived fields, tariff),
  line-protocol encoding and batched writes, messages handed over in memory;
- hashwatt's bridge process: the same plus MQTT — the messages wait at a real mosquitto
  (QoS 1, persistent session), the bridge receives, writes and acknowledges every one.

    python -m bench.exporter --messages 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt

from exporters.bridge import Bridge
from exporters.intake import Inbound
from exporters.sinks import InfluxV1Config, InfluxV1Sink
from hashwatt.config import (
    BridgeConfig,
    Config,
    CustomerConfig,
    MqttConfig,
    PriceConfig,
    SiteConfig,
)
from hashwatt.contract import RigDoc
from hashwatt.influxql import InfluxQL
from hashwatt.tariff import TariffConfig
from sim.launch import Influxd, Mosquitto

TOPIC = "hashwatt/v1/bench/rig/{}"
# a realistic site prices every reading: time-of-use with a weekday peak
TARIFF = {"periods": [{"from": "2026-01-01", "rate": 0.08, "windows": [
    {"name": "peak", "rate": 0.21, "start": "17:00", "end": "21:00",
     "weekdays": ["mon", "tue", "wed", "thu", "fri"]}]}]}


def documents(count: int, now_ms: int, customers: int = 0) -> list[RigDoc]:
    """Realistic rig readings (three boards each), as the collector publishes them."""
    out: list[RigDoc] = []
    for i in range(count):
        rig = f"r{i % 2000:04d}"
        out.append({
            "schema": 1, "kind": "rig", "ts_ms": now_ms - (count - i), "site": "bench",
            "rig": rig, "collector": "c1", "rack": f"R{i % 2000 // 10:03d}", "slot": i % 10,
            "customer": f"c{i % 2000 % customers}" if customers else "acme",
            "make": "AntMiner", "model": "S19 Pro", "firmware": "Stock",
            "online": True, "hashrate_ths": 109.25 + i % 7, "expected_hashrate_ths": 110.0,
            "power_w": 3250.0, "power_source": "pdu", "temp_max_c": 70.0,
            "temp_limit_c": 95.0, "nominal_efficiency_j_th": 29.545,
            "fans_rpm": [4000, 4030, 4060, 4090], "boards_total": 3, "uptime_s": 5000 + i,
            "boards": [{"board": b, "hashrate_ths": 36.4, "chip_temp_c": 70.0,
                        "board_temp_c": 58.0, "chips": 114, "expected_chips": 114}
                       for b in range(3)]})
    return out


def payloads(count: int, now_ms: int, customers: int = 0) -> list[Inbound]:
    """The readings as the bridge receives them."""
    return [Inbound(0, 0, TOPIC.format(doc["rig"]), json.dumps(doc).encode(), time.time())
            for doc in documents(count, now_ms, customers)]


def baseline(messages: list[Inbound], sink: InfluxV1Sink, batch: int) -> float:
    """CPU seconds of the do-it-yourself bridge: json + influxdb-client Points."""
    from influxdb_client import Point, WritePrecision

    start = time.process_time()
    for i in range(0, len(messages), batch):
        lines = []
        for msg in messages[i:i + batch]:
            doc = json.loads(msg.payload)
            tags = {k: str(doc[k]) for k in ("site", "rig", "rack", "customer", "make",
                                               "model", "firmware", "slot")}
            rig = Point("rig").time(doc["ts_ms"], WritePrecision.MS)
            for key in ("hashrate_ths", "expected_hashrate_ths", "power_w", "temp_max_c",
                        "temp_limit_c", "online", "uptime_s", "power_source"):
                rig.field(key, doc[key])
            for key, value in tags.items():
                rig.tag(key, value)
            lines.append(rig.to_line_protocol())
            for b in doc["boards"]:
                board = Point("rig_board").time(doc["ts_ms"], WritePrecision.MS)
                for key, value in {**tags, "board": str(b["board"])}.items():
                    board.tag(key, value)
                for key in ("hashrate_ths", "chip_temp_c", "board_temp_c", "chips"):
                    board.field(key, b[key])
                lines.append(board.to_line_protocol())
        sink.post(("\n".join(lines) + "\n").encode())
    return time.process_time() - start


def pipeline(cfg: Config, sink: InfluxV1Sink, messages: list[Inbound], batch: int) -> float:
    """CPU seconds of the bridge's decode, encode and write, messages handed over in memory."""
    bridge = Bridge(cfg, sink)
    start = time.process_time()
    for i in range(0, len(messages), batch):
        bridge.process(messages[i:i + batch])
    if bridge.fanout is not None:  # the customers' queued copies are part of the work
        bridge.fanout.close()
    cpu = time.process_time() - start
    assert bridge.counters.messages == len(messages) and bridge.counters.dead_letters == 0
    return cpu


def publish(port: int, count: int, now_ms: int, customers: int = 0) -> None:
    """Publish the readings at QoS 1 and wait for every PUBACK (runs in its own process)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(TOPIC.format(doc["rig"]), json.dumps(doc), qos=1)
             for doc in documents(count, now_ms, customers)]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def _drain(cfg: Config, sink: InfluxV1Sink, count: int, now_ms: int) -> float:
    """Publish while the bridge is away, then measure the bridge emptying its queue."""
    subprocess.run([sys.executable, "-m", "bench.exporter", "--publish-to",
                    str(cfg.mqtt.port), "--messages", str(count), "--now-ms", str(now_ms),
                    "--customers", str(len(cfg.customers))],
                   check=True)
    bridge = Bridge(cfg, sink)
    start = time.process_time()
    bridge.connect()
    worker = threading.Thread(target=bridge.run)
    worker.start()
    while bridge.counters.messages < count and worker.is_alive():
        time.sleep(0.05)
    bridge.stopping.set()
    worker.join()
    bridge.intake.stop()
    if bridge.fanout is not None:
        bridge.fanout.close()
    cpu = time.process_time() - start
    assert bridge.counters.messages == count and bridge.counters.dead_letters == 0
    return cpu


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements and print messages and points per CPU-second."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=0,
                        help="spread the rigs over N hosting customers, each with a database "
                        "of its own the bridge copies their points into")
    parser.add_argument("--publish-to", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--now-ms", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish_to:
        publish(args.publish_to, args.messages, args.now_ms, args.customers)
        return 0
    run_dir = Path(tempfile.mkdtemp(prefix="hashwatt-bench-exporter-"))
    influxd, broker = Influxd(run_dir).start(), Mosquitto(run_dir).start()
    try:
        print(report(measure(args, run_dir, influxd.url, broker.port), args.messages))
    finally:
        broker.stop()
        influxd.stop()
    return 0


def measure(args: argparse.Namespace, run_dir: Path, url: str, port: int) -> dict[str, float]:
    """CPU seconds of each way, each into a database of its own."""
    for db in ("baseline", "pipeline", "bridge"):
        InfluxQL(url, db).create_database()
    customers = [CustomerConfig(id=f"c{i}", name=f"customer {i}", currency="EUR",
                                price=PriceConfig(kind="fixed", per_kwh=Decimal("0.08")))
                 for i in range(args.customers)]
    for c in customers:
        InfluxQL(url, c.database).create_database()
    now_ms = int(time.time() * 1000)
    messages = payloads(args.messages, now_ms, args.customers)

    def config(db: str) -> Config:
        return Config(site=SiteConfig(name="bench", timezone="Europe/Berlin"),
                      mqtt=MqttConfig(port=port),
                      influxdb=InfluxV1Config(url=url, database=db),
                      bridge=BridgeConfig(client_id="bench-bridge", batch_size=args.batch,
                                          dead_letter_file=run_dir / "dead.jsonl"),
                      tariff=TariffConfig.model_validate(TARIFF), customers=customers)

    return {"baseline": baseline(messages, InfluxV1Sink(url, "baseline"), args.batch),
            "pipeline": pipeline(config("pipeline"), InfluxV1Sink(url, "pipeline"), messages,
                                 args.batch),
            "bridge": through_broker(config("bridge"), InfluxV1Sink(url, "bridge"),
                                          args.messages, now_ms)}


def through_broker(cfg: Config, sink: InfluxV1Sink, count: int, now_ms: int) -> float:
    """CPU seconds of the whole bridge: receive from mosquitto, decode, write, acknowledge."""
    first = Bridge(cfg, sink)
    first.connect()  # opens the persistent session: the broker queues for it from now on
    first.intake.stop()
    return _drain(cfg, sink, count, now_ms)


def report(cpu: dict[str, float], count: int) -> str:
    """The figures and the ratios against the baseline."""
    points = count * 4
    rows = [f"exporter: {count} rig readings (three boards each, {points} points), CPU of "
            "this process only"]
    names = {"baseline": "baseline: json + influxdb-client Point, no validation",
             "pipeline": "hashwatt decode + encode + write (in memory)",
             "bridge": "hashwatt bridge process (MQTT QoS 1 in, ack out)"}
    for key, name in names.items():
        rows.append(f"{name:<56}{count / cpu[key]:>10,.0f} msg/CPU-s"
                    f"{points / cpu[key]:>10,.0f} points/CPU-s"
                    f"   x{cpu['baseline'] / cpu[key]:.2f}")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
