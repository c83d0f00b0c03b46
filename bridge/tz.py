"""Source time zones: every loader takes one (``--tz``) and converts the file's clock to UTC.

Accepted: an IANA name (``America/New_York``, ``Europe/Athens`` for broker EET/EEST), ``UTC``, or a fixed offset
(``UTC+4``, ``+04:00``, ``-5``, ``GMT-05:00``).
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from bridge.errors import UserError

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def parse_tz(spec: str | tzinfo | None) -> tzinfo:
    """A ``tzinfo`` for a zone name or fixed offset; ``None`` means UTC."""
    if spec is None:
        return timezone.utc
    if isinstance(spec, tzinfo):
        return spec
    text = str(spec).strip()
    if text.upper() in ("UTC", "GMT", "Z", "0", "+0", "+00:00"):
        return timezone.utc
    m = _OFFSET.match(text)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes >= 60:
            raise UserError(f"time zone offset {text!r} is out of range", hint="use -14:00..+14:00")
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(
            f"unknown time zone {text!r}",
            hint="use an IANA name such as America/New_York or Europe/Athens, or a fixed offset such as UTC+4",
        ) from None


def localize_to_utc(times: pd.Series | pd.DatetimeIndex, tz: str | tzinfo | None) -> pd.DatetimeIndex:
    """Naive wall-clock times in ``tz`` to UTC.

    Daylight-saving edges are resolved the way market data vendors write them: a wall time that does not exist (the
    spring-forward hour) moves forward, and an ambiguous one (the repeated autumn hour) is read as the first, DST one.
    """
    idx = pd.DatetimeIndex(times)
    zone = parse_tz(tz)
    if idx.tz is not None:
        return idx.tz_convert("UTC")
    if isinstance(zone, timezone):
        offset = zone.utcoffset(None)
        return (idx - pd.Timedelta(offset)).tz_localize("UTC")
    return idx.tz_localize(zone, ambiguous="infer" if _monotonic(idx) else True, nonexistent="shift_forward").tz_convert(
        "UTC"
    )


def _monotonic(idx: pd.DatetimeIndex) -> bool:
    # 'infer' needs increasing times to tell the repeated hour's two passes apart; otherwise take DST.
    return idx.is_monotonic_increasing and len(idx) > 1
