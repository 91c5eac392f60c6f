"""End-to-end delivery as pure logic: receipts, seq ranges, dead-letter bounds, QoS 0."""

from __future__ import annotations

import json
from pathlib import Path

from collector.publisher import parse_receipt
from exporters.bridge import DeadLetters, Inbox, seq_ranges
from exporters.intake import Inbound


def test_stored_seqs_travel_as_merged_ranges() -> None:
    assert seq_ranges([7, 1, 3, 2, 3, 9, 8]) == [[1, 3], [7, 9]]
    assert seq_ranges([]) == []


def test_a_receipt_for_another_spool_or_junk_trims_nothing() -> None:
    doc = json.dumps({"spool": "ab", "seqs": [[1, 3], [7, 7]], "bridge": "b1"}).encode()
    assert parse_receipt(doc, "ab") == [(1, 3), (7, 7)]
    assert parse_receipt(doc, "cd") == []  # an older spool file's epoch
    assert parse_receipt(b"not json", "ab") == []
    assert parse_receipt(b'{"spool": "ab", "seqs": [[3, 1], [0, 2]]}', "ab") == []


def msg(n: int, qos: int = 1, size: int = 100) -> Inbound:
    return Inbound(n, qos, "hashwatt/v1/s/rig/r", b"x" * size, 0.0)


def test_qos0_messages_are_bounded_qos1_are_not_dropped() -> None:
    inbox = Inbox(max_qos0=3)
    inbox.put_many([msg(i, qos=0) for i in range(5)] + [msg(9, qos=1)])
    assert (inbox.qsize(), inbox.qos0_dropped) == (4, 2)
    taken = inbox.batch(10, 0.01)
    assert len(taken) == 4 and inbox.qos0 == 0
    inbox.put_many([msg(i, qos=0) for i in range(3)])
    assert inbox.qos0_dropped == 2  # room again once the worker took them


def test_dead_letters_rotate_within_their_bound(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "dl.jsonl", max_bytes=10_000, keep=2)
    for i in range(200):
        assert dead.put(msg(i, size=500), "junk")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["dl.jsonl", "dl.jsonl.1", "dl.jsonl.2"]
    assert all((tmp_path / f).stat().st_size <= 10_000 for f in files)


def test_an_unwritable_dead_letter_file_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    dead = DeadLetters(blocker / "dl.jsonl")
    assert dead.put(msg(1), "junk") is False and dead.put(msg(2), "junk") is False
    assert dead.errors >= 2
