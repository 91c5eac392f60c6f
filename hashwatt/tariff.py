"""Electricity tariffs: flat or time-of-use (weekdays, hours, seasons), with dated changes.

Rates are per kWh in the site currency, evaluated in the site's timezone at the reading's
own timestamp. Window edges fall on quarter hours, so the energy ledger can price each
quarter hour at one rate.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
        if self.start >= self.end:
            raise ValueError(f"window {self.name!r}: start {self.start} must be before end "
                             f"{self.end} (split a window that crosses midnight in two)")
        return self

    def matches(self, local: dt.datetime) -> bool:
        """True when the local time falls in this window."""
        clock = local.strftime("%H:%M")
        return (WEEKDAYS[local.weekday()] in self.weekdays and local.month in self.months
                and self.start <= clock < self.end)


class Period(BaseModel):
    """A tariff in force from a date (site timezone) until the next period's date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: dt.date = Field(alias="from")
    rate: Annotated[float, Field(ge=0)]  # the rate outside every window (or the flat rate)
    windows: list[Window] = []


class TariffConfig(BaseModel):
    """The site's tariff: dated periods, each flat or time-of-use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    periods: list[Period] = Field(min_length=1)

    @model_validator(mode="after")
    def _sorted(self) -> TariffConfig:
        dates = [p.start for p in self.periods]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("tariff periods must be in date order, one per date")
        return self


class Tariff:
    """Rate lookups for one site."""

    def __init__(self, config: TariffConfig, timezone: str) -> None:
        self.config = config
        self.zone = ZoneInfo(timezone)
        # every edge falls on a quarter hour (UTC offsets are whole quarters too), so a rate
        # holds for its whole UTC quarter: the bridge looks it up once per quarter, not per point
        self._quarters: dict[int, float | None] = {}

    @cached_property
    def _starts(self) -> list[dt.datetime]:
        return [dt.datetime.combine(p.start, dt.time(), self.zone) for p in self.config.periods]

    def rate_at(self, ts_s: float) -> float | None:
        """The rate per kWh at an instant; None before the first period."""
        quarter = int(ts_s // QUARTER_S)
        if quarter not in self._quarters:
            if len(self._quarters) > 4096:
                self._quarters.clear()
            self._quarters[quarter] = self._rate_of(quarter * QUARTER_S)
        return self._quarters[quarter]

    def _rate_of(self, ts_s: float) -> float | None:
        local = dt.datetime.fromtimestamp(ts_s, self.zone)
        period = None
        for start, candidate in zip(self._starts, self.config.periods, strict=True):
            if local >= start:
                period = candidate
        if period is None:
            return None
        for window in period.windows:
            if window.matches(local):
                return window.rate
        return period.rate

    def quarter_rate(self, quarter_start_s: int) -> float | None:
        """The rate of a quarter hour (tariff edges fall on quarter hours)."""
        return self.rate_at(quarter_start_s)
