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


def test_exact_ranges_leave_the_spool_and_the_epoch_survives_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", 100)
    spool.append([("t", str(i).encode()) for i in range(1, 11)])  # ids 1..10
    epoch = spool.epoch
    spool.remove_ranges([(2, 4), (7, 7)])  # two bridges' receipts, exact seqs
    assert [m.id for m in spool.after(0, 100)] == [1, 5, 6, 8, 9, 10] and spool.depth() == 6
    spool.close()
    again = Spool(tmp_path / "s.db", 100)
    assert again.epoch == epoch and [m.id for m in again.get([9, 4, 1])] == [1, 9]
    again.append([("t", b"11")])
    assert again.after(10, 5)[0].id == 11  # ids never repeat within an epoch


def test_a_spool_that_cannot_be_opened_keeps_readings_in_memory_and_moves_them_later(
        tmp_path: Path) -> None:
    blocker = tmp_path / "spool-dir"
    blocker.write_text("a file where the spool's folder should be")
    spool = Spool(blocker / "s.db", 100, memory_max=3)
    spool.append([("t", str(i).encode()) for i in range(5)])
    assert (spool.in_memory(), spool.dropped(), spool.depth()) == (3, 2, 3)
    assert spool.disk_errors >= 1 and [m.id for m in spool.after(0, 10)] == [3, 4, 5]
    blocker.unlink()  # the disk is back
    spool._retry_at = 0
    spool.append([("t", b"5")])
    assert spool.in_memory() == 0 and [m.payload for m in spool.after(0, 10)] == [
        b"2", b"3", b"4", b"5"]
    assert [m.id for m in spool.after(0, 10)] == [3, 4, 5, 6]  # a new file keeps the ids
