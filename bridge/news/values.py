"""Calendar values as written by economic calendars, parsed to floats.

Accepted: ``227K``, ``-0.3%``, ``1.2B``, ``0.54T``, ``<0.10%`` (a bound is read as its value), ``-$45.6B``,
``-£7768``, ``¥990.2B``, ``A$43.8B``, ``EU80b``, ``3.0%%``, ``1,234.5K``; suffixes in either case.
Multipliers are applied (K = 1e3, M = 1e6, B = 1e9, T = 1e12) so that ``2444M`` and ``2.4B`` compare correctly;
percentages keep their number (``-0.3%`` is ``-0.3``).

Values that are not a number are ``None``, never an error: blanks, ``n/a``, ``-``, ``Pass``/``Reject``, vote counts
such as ``0-0-9`` and paired values such as ``4.35|2.3``. ``is_missing`` tells a blank from a non-numeric value so
loaders can report the second kind.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

_MULTIPLIER = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
# Sign, then an optional currency prefix (symbols or up to three letters: $, £, ¥, €, A$, NZ$, EU, CHF), then the number.
_VALUE = re.compile(
    r"""^(?P<bound>[<>]=?|≤|≥)?\s*
        (?P<sign>[+-])?\s*
        (?:[A-Za-z]{1,3}(?=[$£¥€])|[A-Za-z]{1,3}(?=\d))?[$£¥€]?\s*
        (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
        \s*(?P<mult>[KkMmBbTt])?\s*
        (?P<pct>%+)?$""",
    re.VERBOSE,
)
_MISSING = {"", "-", "--", "n/a", "na", "nan", "none", "null", "#n/a", "tba", "tbd"}


def is_missing(text: object) -> bool:
    """True for an empty calendar cell or an explicit 'not available' marker."""
    if text is None:
        return True
    if isinstance(text, float) and math.isnan(text):
        return True
    return str(text).strip().lower() in _MISSING


def parse_value(text: object) -> float | None:
    """The number a calendar cell states, or ``None`` when it states none (see the module docstring)."""
    if text is None:
        return None
    if isinstance(text, int | float):
        return None if isinstance(text, float) and math.isnan(text) else float(text)
    return _parse_text(str(text))


@lru_cache(maxsize=65536)
def _parse_text(text: str) -> float | None:
    # Calendars repeat the same few thousand strings ('0.2%', '50.1'): caching makes a year of rows cheap.
    s = text.strip()
    if is_missing(s):
        return None
    m = _VALUE.match(s)
    if not m:
        return None
    value = float(m.group("num").replace(",", ""))
    value *= _MULTIPLIER[(m.group("mult") or "").upper()]
    if m.group("sign") == "-":
        value = -value
    return value
