"""Source time zones: every loader takes one (``--tz``) and converts the file's clock to UTC.

Accepted: an IANA name (``America/New_York``; ``Europe/Athens`` for brokers on European EET/EEST), ``UTC``, a fixed
offset (``UTC+4``, ``+04:00``, ``-5``, ``GMT-05:00``), or an IANA name shifted by whole or half hours
(``America/New_York+7``). The last is the "New York close" server time most MetaTrader brokers run: UTC+2 in winter and
UTC+3 in summer, switching on the US daylight-saving dates, so that every trading day ends at 17:00 New York. It differs
from ``Europe/Athens`` in the two or three weeks a year when the US and Europe have already changed clocks and the other
has not yet.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from bridge.errors import UserError

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_SHIFTED = re.compile(r"^([A-Za-z][A-Za-z0-9_+\-/]*[A-Za-z_])\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$")


class ShiftedZone(tzinfo):
    """The clock of an IANA zone moved by a fixed amount: ``ShiftedZone(ZoneInfo("America/New_York"), 7h)``.

    Its wall time is the base zone's wall time plus ``shift``, so it follows the base zone's daylight-saving dates.
    """

    def __init__(self, base: ZoneInfo, shift: timedelta, name: str = ""):
        self.base = base
        self.shift = shift
        self.name = name or f"{base.key}{_fmt_shift(shift)}"

    def _base_time(self, dt: datetime) -> datetime:
        return (dt.replace(tzinfo=None) - self.shift).replace(tzinfo=self.base, fold=dt.fold)

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        if dt is None:
            return None
        return self.base.utcoffset(self._base_time(dt)) + self.shift

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None if dt is None else self.base.dst(self._base_time(dt))

    def tzname(self, dt: datetime | None) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"ShiftedZone({self.name!r})"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShiftedZone) and (self.base.key, self.shift) == (other.base.key, other.shift)

    def __hash__(self) -> int:
        return hash((self.base.key, self.shift))


def _fmt_shift(shift: timedelta) -> str:
    minutes = int(shift.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h}" + (f":{m:02d}" if m else "")


def _signed_offset(sign: str, hours: str, minutes: str | None, text: str) -> timedelta:
    h, m = int(hours), int(minutes or 0)
    if h > 14 or m >= 60:
        raise UserError(f"time zone offset {text!r} is out of range", hint="use -14:00..+14:00")
    return (1 if sign == "+" else -1) * timedelta(hours=h, minutes=m)


def parse_tz(spec: str | tzinfo | None) -> tzinfo:
    """A ``tzinfo`` for a zone name, fixed offset or shifted zone (see the module docstring); ``None`` means UTC."""
    if spec is None:
        return UTC
    if isinstance(spec, tzinfo):
        return spec
    text = str(spec).strip()
    if text.upper() in ("UTC", "GMT", "Z", "0", "+0", "+00:00"):
        return UTC
    m = _OFFSET.match(text)
    if m:
        return timezone(_signed_offset(m.group(1), m.group(2), m.group(3), text))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    # Only after the plain lookup: "Etc/GMT+5" is itself an IANA name (with the POSIX sign, UTC-5).
    m = _SHIFTED.match(text)
    if m:
        try:
            base = ZoneInfo(m.group(1))
        except (ZoneInfoNotFoundError, ValueError):
            base = None
        if base is not None:
            return ShiftedZone(base, _signed_offset(m.group(2), m.group(3), m.group(4), text), name=text)
    raise UserError(
        f"unknown time zone {text!r}",
        hint="use an IANA name such as America/New_York or Europe/Athens, a fixed offset such as UTC+4, "
        "or America/New_York+7 for MetaTrader 'New York close' server time",
    )


def tz_name(spec: str | tzinfo | None) -> str:
    """A stable printable name for a zone spec (``"UTC"``, ``"UTC+04:00"``, ``"America/New_York"``)."""
    zone = parse_tz(spec)
    if isinstance(zone, timezone):
        offset = zone.utcoffset(None)
        if offset == timedelta(0):
            return "UTC"
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if isinstance(zone, ZoneInfo):
        return zone.key
    return str(zone)


def localize_to_utc(times: pd.Series | pd.DatetimeIndex, tz: str | tzinfo | None) -> pd.DatetimeIndex:
    """Naive wall-clock times in ``tz`` to UTC.

    Daylight-saving edges are resolved the way market data vendors write them: a wall time that does not exist (the
    spring-forward hour) moves forward, and the repeated autumn hour is told apart by its order in the file (its first
    pass is daylight time, the second standard time); where the order cannot tell (a single pass, or shuffled rows) the
    wall time is read as daylight time.
    """
    idx = pd.DatetimeIndex(times)
    zone = parse_tz(tz)
    if idx.tz is not None:
        return idx.tz_convert("UTC")
    if isinstance(zone, timezone):
        offset = zone.utcoffset(None)
        return (idx - pd.Timedelta(offset)).tz_localize("UTC")
    if isinstance(zone, ShiftedZone):
        idx = idx - pd.Timedelta(zone.shift)
        zone = zone.base
    try:
        local = idx.tz_localize(zone, ambiguous="infer", nonexistent="shift_forward")
    except ValueError:
        # 'infer' needs both passes of the repeated hour in order; without them take daylight time.
        local = idx.tz_localize(zone, ambiguous=True, nonexistent="shift_forward")
    return local.tz_convert("UTC")


def utc_to_wall(times: pd.Series | pd.DatetimeIndex, tz: str | tzinfo | None) -> pd.DatetimeIndex:
    """UTC (or tz-aware) times as naive wall-clock times in ``tz``: the inverse of ``localize_to_utc``."""
    idx = pd.DatetimeIndex(times)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    zone = parse_tz(tz)
    if isinstance(zone, timezone):
        return idx.tz_localize(None) + pd.Timedelta(zone.utcoffset(None))
    if isinstance(zone, ShiftedZone):
        # pandas converts only to zones it knows; shift the base zone's wall clock instead.
        return idx.tz_convert(zone.base).tz_localize(None) + pd.Timedelta(zone.shift)
    return idx.tz_convert(zone).tz_localize(None)
