"""The roster: every rig and collector ever seen stays known until a person forgets it.

Grafana's alerting has no memory of a series: one that stops arriving is *missing*, marked
stale and resolved (pkg/services/ngalert/state/manager.go, "MissingSeries"), and a query can
only look back so far (InfluxDB 3 limits a query to about 72 h). So a rig whose collector died,
or a collector that died, would page for a while and then disappear. The bridge therefore
writes, every Roster.INTERVAL_S, one *mark* per known subject into the subject's own
measurement, with the tags of its latest reading and three fields: `last_seen_s` (its
latest real reading), `silent_s` (seconds since then: what the dashboards list as silent)
and `forgotten` (0). The "rig offline" and "collector silent" rules read the
marks of the last few intervals as "known" (each contributing 0 readings), so a subject silent
for two days still fires, with the labels of its last reading.

`hashwatt forget` writes a mark with `forgotten` 1: the bridge stops carrying the subject (a
rig taken out of the inventory, a collector retired) until it sends a reading again.

The bridge keeps the roster in memory; at start it rebuilds it from the marks of the last 72 h
and the readings of the last 24 h, so a restart (or an outage shorter than 72 h) forgets
nothing. Marks have no field a reading has, so no panel, report or ledger query counts them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from exporters.lineproto import Point
from exporters.sinks import WriteRejected, WriteUnavailable, make_sink, query_client
from hashwatt.config import Config
from hashwatt.influxql import InfluxQL, InfluxQLError
from hashwatt.names import Roster as R

log = logging.getLogger(__name__)

MARKS_LOOKBACK_S = 72 * 3600  # at start: within InfluxDB 3's query range limit
READINGS_LOOKBACK_S = 24 * 3600  # at start: readings older than this are in the marks
MARGIN_S = 60.0  # later runs overlap the previous one by this much (late writes)

Subject = tuple[str, str, str]  # (measurement, site, name)


@dataclass
class Known:
    """One subject: the tags of its latest reading and that reading's time."""

    tags: dict[str, str]
    seen_s: float


def _series(db: InfluxQL, query: str) -> list[tuple[dict[str, str], list[Any]]]:
    out = []
    for result in db.execute(query):
        for series in result.get("series", []):
            for values in series["values"]:
                out.append((series.get("tags", {}), values))
    return out


def _subject(measurement: str, key: str, tags: dict[str, str]) -> Subject | None:
    name = tags.get(key, "")
    return (measurement, tags.get("site", ""), name) if name else None


def _present(tags: dict[str, str]) -> dict[str, str]:
    """The series' own tags: GROUP BY * gives every tag key of the measurement, "" where
    the series has none (an empty tag value is not line protocol)."""
    return {k: v for k, v in tags.items() if v}


def _window(start_s: float, end_s: float) -> str:
    return f"time > {int(start_s * 1000)}ms AND time <= {int(end_s * 1000)}ms"


@dataclass
class RosterKeeper:
    """Carries every known rig and collector forward as marks (see the module's doc)."""

    db: InfluxQL
    write: Callable[[Sequence[Point]], None]  # a sink's write
    known: dict[Subject, Known] = field(default_factory=dict)
    last_run_s: float | None = None

    def run(self, now_s: float) -> int:
        """Update the roster from the readings and marks since the last run, then write one
        mark per known subject at now_s; returns how many."""
        first = self.last_run_s is None
        since = now_s - READINGS_LOOKBACK_S if first else (self.last_run_s or 0) - MARGIN_S
        marks_since = now_s - MARKS_LOOKBACK_S if first else since
        points = []
        for measurement, key, reading_field in R.SUBJECTS:
            # readings first: a forget mark then removes what it names, unless a reading
            # came after it
            self._readings(measurement, key, reading_field, since, now_s)
            self._marks(measurement, key, marks_since, now_s, first)
            for (m, _site, _name), k in sorted(self.known.items()):
                if m == measurement:
                    points.append(Point(measurement, k.tags, {
                        R.LAST_SEEN: round(k.seen_s, 3), R.FORGOTTEN: 0,
                        R.SILENT: max(0, round(now_s - k.seen_s))}, int(now_s * 1000)))
        if points:
            self.write(points)
        self.last_run_s = now_s
        return len(points)

    def _readings(self, measurement: str, key: str, reading_field: str, since: float,
                  now_s: float) -> None:
        query = (f'SELECT last("{reading_field}") FROM "{measurement}" WHERE '
                 f'{_window(since, now_s)} GROUP BY *')
        for tags, (ts_ms, _value) in _series(self.db, query):
            subject = _subject(measurement, key, tags)
            if subject is None:
                continue
            seen = ts_ms / 1000
            current = self.known.get(subject)
            if current is None or seen >= current.seen_s:  # a move: the newest tags win
                self.known[subject] = Known(_present(tags), seen)

    def _marks(self, measurement: str, key: str, since: float, now_s: float,
               first: bool) -> None:
        # at start the latest mark says whether a subject is carried; later, any forget mark
        # since the last run counts (the bridge's own mark may have been written after it)
        pick = "last" if first else "max"
        query = (f'SELECT {pick}("{R.FORGOTTEN}") AS "f", last("{R.LAST_SEEN}") AS "seen" '
                 f'FROM "{measurement}" WHERE {_window(since, now_s)} GROUP BY *')
        for tags, (_ts, forgotten, seen) in _series(self.db, query):
            subject = _subject(measurement, key, tags)
            if subject is None or seen is None:
                continue
            current = self.known.get(subject)
            if forgotten:
                # forgotten unless it sent a reading after the one the forget mark names
                # (marks hold seconds to the millisecond, as readings' times are)
                if current is not None and round(current.seen_s, 3) <= seen:
                    del self.known[subject]
            elif current is None or seen > current.seen_s:
                self.known[subject] = Known(_present(tags), float(seen))


def forget(db: InfluxQL, write: Callable[[Sequence[Point]], None], *, measurement: str, site: str,
           name: str, now_s: float) -> int:
    """Write the forget mark for one rig or collector, on each series its marks and readings
    of the last 72 h name; returns how many (0: not known)."""
    key, reading_field = next((k, f) for m, k, f in R.SUBJECTS if m == measurement)
    quoted = {v: v.replace("\\", "\\\\").replace("'", "\\'") for v in (site, name)}
    where = (f'{_window(now_s - MARKS_LOOKBACK_S, now_s)} AND "site" = \'{quoted[site]}\' '
             f'AND "{key}" = \'{quoted[name]}\' GROUP BY *')
    seen: dict[tuple[tuple[str, str], ...], float] = {}
    for tags, (ts_ms, _v) in _series(db, f'SELECT last("{reading_field}") FROM '
                                         f'"{measurement}" WHERE {where}'):
        seen[tuple(sorted(_present(tags).items()))] = ts_ms / 1000
    for tags, (_ts, mark) in _series(db, f'SELECT last("{R.LAST_SEEN}") FROM '
                                         f'"{measurement}" WHERE {where}'):
        series = tuple(sorted(_present(tags).items()))
        if mark is not None:
            seen[series] = max(seen.get(series, 0.0), float(mark))
    points = [Point(measurement, dict(series), {R.LAST_SEEN: round(last, 3), R.FORGOTTEN: 1},
                    int(now_s * 1000)) for series, last in seen.items()]
    if points:
        write(points)
    return len(points)


def roster_loop(cfg: Config, stop: threading.Event,
                clock: Callable[[], float] = time.time) -> None:
    """In the bridge: carry the roster forward every Roster.INTERVAL_S until stopped; a
    failed run is logged and tried again next time."""
    try:
        db = query_client(cfg)
    except ValueError as exc:  # a sink InfluxQL cannot read back: no roster, said once
        log.warning("roster off: %s", exc)
        return
    sink = make_sink(cfg)
    keeper = RosterKeeper(db, sink.write)
    try:
        # the first marks one interval after start: the rules read the marks of the last
        # three intervals, so the ones written before a restart cover the gap
        while not stop.wait(R.INTERVAL_S):
            try:
                keeper.run(clock())
            except (WriteUnavailable, WriteRejected, InfluxQLError, httpx.HTTPError,
                    OSError) as exc:
                log.warning("roster marks not written (%s); next try in %d s", exc,
                            R.INTERVAL_S)
    finally:
        sink.close()
        db.close()
