"""Exporter benchmark: messages and points per CPU-second through the bridge's decode, encode
and write path into a real influxd (its own process, its CPU not counted).

    python -m hashwatt.bench.exporter --messages 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from exporters.bridge import Bridge, Inbound
from exporters.sinks import InfluxV1Sink
from hashwatt.config import BridgeConfig, Config, InfluxConfig, SiteConfig
from hashwatt.influxql import InfluxQL
from hashwatt.services import Influxd


def payloads(count: int, now_ms: int) -> list[Inbound]:
    """Realistic rig readings (three boards each), as the collector publishes them."""
    out = []
    for i in range(count):
        rig = f"r{i % 2000:04d}"
        doc = {"schema": 1, "kind": "rig", "ts_ms": now_ms - (count - i), "site": "bench",
               "rig": rig, "collector": "c1", "rack": f"R{i % 2000 // 10:03d}",
               "slot": i % 10, "customer": "acme", "make": "AntMiner", "model": "S19 Pro",
               "firmware": "Stock", "online": True, "hashrate_ths": 109.25 + i % 7,
               "expected_hashrate_ths": 110.0, "power_w": 3250.0, "power_source": "pdu",
               "temp_max_c": 70.0, "temp_limit_c": 95.0, "nominal_efficiency_j_th": 29.545,
               "fans_rpm": [4000, 4030, 4060, 4090], "boards_total": 3, "uptime_s": 5000 + i,
               "boards": [{"board": b, "hashrate_ths": 36.4, "chip_temp_c": 70.0,
                           "board_temp_c": 58.0, "chips": 114, "expected_chips": 114}
                          for b in range(3)]}
        out.append(Inbound(0, 0, f"hashwatt/v1/bench/rig/{rig}", json.dumps(doc).encode(),
                           time.time()))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run and print messages and points per CPU-second."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    run_dir = Path(tempfile.mkdtemp(prefix="hashwatt-bench-exporter-"))
    influxd = Influxd(run_dir).start()
    try:
        InfluxQL(influxd.url, "bench").create_database()
        cfg = Config(site=SiteConfig(name="bench"),
                     influxdb=InfluxConfig(url=influxd.url, database="bench"),
                     bridge=BridgeConfig(dead_letter_file=run_dir / "dead.jsonl"))
        bridge = Bridge(cfg, InfluxV1Sink(influxd.url, "bench"))
        messages = payloads(args.messages, int(time.time() * 1000))
        start = time.process_time()
        for i in range(0, len(messages), args.batch):
            bridge.process(messages[i:i + args.batch])
        cpu = time.process_time() - start
        c = bridge.counters
        assert c.messages == args.messages and c.dead_letters == 0
        print(f"exporter: {c.messages} messages ({c.points} points) in {cpu:.2f} CPU-s: "
              f"{c.messages / cpu:,.0f} messages/CPU-s, {c.points / cpu:,.0f} points/CPU-s")
    finally:
        influxd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
