"""Electricity tariffs: flat or time-of-use (weekdays, hours, seasons), with changes at any
local date or quarter-hour time.

Rates are per kWh in the site currency, evaluated in the site's timezone at the reading's
own timestamp. Window edges and changes fall on quarter hours, and every UTC offset in use is
a whole number of quarter hours (+05:30, +05:45 included), so the energy ledger can price each
quarter hour at one rate. The name of the window (or of the period's rate outside every
window) is what reports split by (e.g. peak / off-peak).
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import Annotated, Literal, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

QUARTER_S = 900
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Clock = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):(00|15|30|45)$|^24:00$")]


class Window(BaseModel):
    """A time-of-use window: its rate applies on these weekdays, hours and months."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    rate: Annotated[float, Field(ge=0)]
    weekdays: list[Weekday] = list(WEEKDAYS)
    start: Clock = "00:00"
    end: Clock = "24:00"
    months: list[Annotated[int, Field(ge=1, le=12)]] = list(range(1, 13))  # seasons

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start == self.end:
            raise ValueError(f"window {self.name!r}: start {self.start} and end {self.end} "
                             "are the same time")
        return self

    @property
    def label(self) -> str:
        """The window's name, or its clock span when it has none."""
        return self.name or f"{self.start}-{self.end}"

    def matches(self, local: dt.datetime) -> bool:
        """True when the local time falls in this window. A window whose end is before its
        start crosses midnight (22:00-06:00): the hours after midnight belong to the day the
        window began, so its weekdays and months are that day's."""
        clock = local.strftime("%H:%M")
        if self.start < self.end:
            return self._on(local) and self.start <= clock < self.end
        if clock >= self.start:
            return self._on(local)
        return clock < self.end and self._on(local - dt.timedelta(days=1))

    def _on(self, day: dt.datetime) -> bool:
        return WEEKDAYS[day.weekday()] in self.weekdays and day.month in self.months


def _local_start(value: object) -> object:
    """`from` as a naive local datetime: a date means its local midnight."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value) if "T" in value or " " in value \
                else dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a local date (2026-10-14) or date and time "
                             "(2026-10-14T14:00)") from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    return value


class Period(BaseModel):
    """A tariff in force from a local date or date and time (site timezone) until the next
    period's start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Annotated[dt.datetime, BeforeValidator(_local_start)] = Field(alias="from")
    rate: Annotated[float, Field(ge=0)]  # the rate outside every window (or the flat rate)
    name: str = "standard"  # what reports call the rate outside every window (e.g. off-peak)
    windows: list[Window] = []

    @model_validator(mode="after")
    def _quarter(self) -> Period:
        start = self.start
        if start.tzinfo is not None:
            raise ValueError(f"from = {start.isoformat()}: give the site's local time, "
                             "without a UTC offset")
        if start.minute % 15 or start.second or start.microsecond:
            raise ValueError(f"from = {start.isoformat()}: changes fall on quarter hours "
                             "(:00, :15, :30, :45)")
        return self


class TariffConfig(BaseModel):
    """The site's tariff: dated periods, each flat or time-of-use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    periods: list[Period] = Field(min_length=1)

    @model_validator(mode="after")
    def _sorted(self) -> TariffConfig:
        starts = [p.start for p in self.periods]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ValueError("tariff periods must be in date order, one per date")
        return self


class Price(NamedTuple):
    """The rate of an instant and the name of the window (or period rate) it comes from."""

    rate: float
    window: str


class Tariff:
    """Rate lookups for one site."""

    def __init__(self, config: TariffConfig, timezone: str) -> None:
        self.config = config
        self.zone = ZoneInfo(timezone)
        # every edge falls on a quarter hour (UTC offsets are whole quarters too), so a rate
        # holds for its whole UTC quarter: the bridge looks it up once per quarter, not per point
        self._quarters: dict[int, Price | None] = {}

    @cached_property
    def _starts(self) -> list[float]:
        # instants, not wall clocks: aware datetimes of one zone compare by wall clock, and a
        # change at 02:30 on a fall-back night would apply, then not, then again
        return [self._instant(p.start) for p in self.config.periods]

    def _instant(self, local: dt.datetime) -> float:
        """The first instant the site's wall clock reads `local`: on a fall-back night its
        first occurrence; a time a spring-forward skips applies from the jump itself."""
        ts = local.replace(tzinfo=self.zone).timestamp()  # fold=0: skipped times land late
        while dt.datetime.fromtimestamp(ts - QUARTER_S, self.zone).replace(tzinfo=None) >= local:
            ts -= QUARTER_S  # the clock already read `local` (or later) a quarter before
        return ts

    def price_at(self, ts_s: float) -> Price | None:
        """The rate per kWh and its window name at an instant; None before the first period."""
        quarter = int(ts_s // QUARTER_S)
        if quarter not in self._quarters:
            if len(self._quarters) > 4096:
                self._quarters.clear()
            self._quarters[quarter] = self._price_of(quarter * QUARTER_S)
        return self._quarters[quarter]

    def rate_at(self, ts_s: float) -> float | None:
        """The rate per kWh at an instant; None before the first period."""
        price = self.price_at(ts_s)
        return price.rate if price is not None else None

    def _price_of(self, ts_s: float) -> Price | None:
        local = dt.datetime.fromtimestamp(ts_s, self.zone)
        period = None
        for start, candidate in zip(self._starts, self.config.periods, strict=True):
            if ts_s >= start:
                period = candidate
        if period is None:
            return None
        for window in period.windows:
            if window.matches(local):
                return Price(window.rate, window.label)
        return Price(period.rate, period.name)

    def quarter_rate(self, quarter_start_s: int) -> float | None:
        """The rate of a quarter hour (tariff edges fall on quarter hours)."""
        return self.rate_at(quarter_start_s)
