"""End-to-end latency: poll timestamp to point stored in InfluxDB (p50 / p99), for a farm of
2,000 rigs polled every 10 s through the real mosquitto, bridge and influxd.

    python -m bench.latency --rigs 2000 --interval 10 --seconds 60

The bridge measures it for every reading it writes (now - ts_ms once InfluxDB accepted the
batch) and reports p50 / p99 per stats interval in the `exporter` measurement.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.rigs import start_farm
from hashwatt.influxql import InfluxQL
from sim.farm import build_rigs, write_inventory
from sim.launch import Influxd, Mosquitto


def config(run_dir: Path, mqtt_port: int, influx_url: str, interval: float) -> Path:
    """Collector and bridge config for the benchmark farm."""
    path = run_dir / "bench.toml"
    path.write_text(f"""state_dir = "."
[site]
name = "bench"
[mqtt]
port = {mqtt_port}
[influxdb]
url = "{influx_url}"
database = "bench"
[collector]
id = "bench"
interval_s = {interval}
deadline_s = 5
concurrency = 200
[bridge]
client_id = "bench-bridge"
stats_interval_s = 5
rollup_interval_s = 0
[inventory]
csv = "inventory.csv"
""")
    return path


def run_chain(args: argparse.Namespace, run_dir: Path, mqtt_port: int,
              influx_url: str) -> list[dict[str, Any]]:
    """Farm, bridge and collector for the given time; the bridge's latency rows."""
    InfluxQL(influx_url, "bench").create_database()
    write_inventory(build_rigs(args.rigs, args.base), run_dir / "inventory.csv")
    farm = start_farm(args.rigs, args.base, run_dir)
    cfg = config(run_dir, mqtt_port, influx_url, args.interval)
    ready = run_dir / "bridge.ready"
    procs = [farm, subprocess.Popen([sys.executable, "-m", "hashwatt.cli", "bridge", str(cfg),
                                     f"--ready-file={ready}"], stderr=subprocess.DEVNULL)]
    try:
        while not ready.exists():
            time.sleep(0.1)
        procs.append(subprocess.Popen([sys.executable, "-m", "hashwatt.cli", "collect",
                                       str(cfg)], stderr=subprocess.DEVNULL))
        started = time.time()
        time.sleep(args.seconds)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    # the first cycle also identifies every rig and overruns the interval (2,000 rigs: about
    # 25 s on 2 cores with the LAN-segmented simulator beside it); the stats window its tail
    # lands in is not the steady state, so measure from the fourth interval on
    since = int((started + 3 * args.interval) * 1000)
    return InfluxQL(influx_url, "bench").rows(
        f'SELECT "lag_p50_ms", "lag_p99_ms", "lag_samples" FROM "exporter" '
        f'WHERE time >= {since}ms AND "lag_samples" > 0')


def main(argv: list[str] | None = None) -> int:
    """Run the chain and print latency percentiles."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rigs", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--base", default="127.90.0.0")
    args = parser.parse_args(argv)
    run_dir = Path(tempfile.mkdtemp(prefix="hashwatt-bench-latency-"))
    broker, influxd = Mosquitto(run_dir).start(), Influxd(run_dir).start()
    try:
        rows = run_chain(args, run_dir, broker.port, influxd.url)
    finally:
        broker.stop()
        influxd.stop()
    if not rows:
        raise SystemExit("no latency samples: the chain did not run")
    samples = sum(r["lag_samples"] for r in rows)
    p50 = sorted(r["lag_p50_ms"] for r in rows)[len(rows) // 2]
    p99 = max(r["lag_p99_ms"] for r in rows)
    print(f"end-to-end latency, {args.rigs} rigs every {args.interval:g} s: {samples} readings, "
          f"p50 {p50:.0f} ms (median of 5 s windows), p99 {p99:.0f} ms (worst 5 s window)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
