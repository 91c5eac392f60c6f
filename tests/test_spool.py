"""The spool and the sharding of the inventory (pure logic on a real SQLite file)."""

from __future__ import annotations

from pathlib import Path

from collector.spool import Spool
from hashwatt.config import Config, RigConfig, SiteConfig, shard


def test_the_spool_keeps_messages_in_order_across_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", 100)
    spool.append([("t/a", b"1"), ("t/b", b"2")])
    spool.close()
    again = Spool(tmp_path / "s.db", 100)
    assert [(m.topic, m.payload) for m in again.after(0, 10)] == [("t/a", b"1"), ("t/b", b"2")]


def test_at_its_bound_the_spool_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", 100)
    spool.append([("t", str(i).encode()) for i in range(130)])
    kept = spool.after(0, 1000)
    assert (len(kept), kept[0].payload, spool.dropped()) == (100, b"30", 30)


def test_acknowledged_messages_leave_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", 100)
    spool.append([("t", b"x"), ("t", b"y")])
    first = spool.after(0, 1)[0]
    spool.remove([first.id])
    assert [m.payload for m in spool.after(0, 10)] == [b"y"] and spool.depth() == 1


def test_shards_split_the_inventory_without_overlap_or_loss() -> None:
    rigs = [RigConfig(id=f"r{i:03d}", address=f"10.0.{i // 250}.{i % 250 + 1}")
            for i in range(300)]
    cfg = Config(site=SiteConfig(name="n"), rigs=rigs)
    parts = [shard(cfg, i, 3) for i in range(3)]
    ids = [r.id for p in parts for r in p.rigs]
    assert sorted(ids) == sorted(r.id for r in rigs)
    assert all(60 < len(p.rigs) < 140 for p in parts)
    assert [p.collector.id for p in parts] == ["collector-1-s0", "collector-1-s1",
                                               "collector-1-s2"]
    assert parts[1].collector.spool_path.name == "hashwatt-spool-s1.db"
