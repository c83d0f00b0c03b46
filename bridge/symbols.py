"""What a trading symbol is: an FX-style pair of two known currency (or metal) codes, with broker decorations.

One definition for the whole project: the server validates ``signal`` symbols with it, the policy splits a symbol
into the currencies news can move, the backtester finds the price step and recognises symbols in file names.
Brokers decorate names with suffixes (``EURUSD.m``, ``EURUSDpro``) and prefixes (``m.EURUSD``, ``FX.EURUSD``): the
pair is the first run of six letters that are two known codes. An EA that knows better sends the symbol's currencies
(``SYMBOL_CURRENCY_BASE`` / ``SYMBOL_CURRENCY_PROFIT``), and those win.
"""

from __future__ import annotations

import re
from pathlib import Path

# ISO codes of currencies and metals that make up FX-style symbols (EURUSD, XAUUSD); used to recognise symbols in file
# names and to reject a mistyped --symbol instead of backtesting against nothing.
CURRENCY_CODES = frozenset(
    [
        "USD",
        "EUR",
        "GBP",
        "JPY",
        "CHF",
        "CAD",
        "AUD",
        "NZD",
        "CNH",
        "CNY",
        "SEK",
        "NOK",
        "DKK",
        "PLN",
        "HUF",
        "CZK",
        "TRY",
        "ZAR",
        "MXN",
        "SGD",
        "HKD",
        "XAU",
        "XAG",
        "RUB",
        "INR",
        "KRW",
        "BRL",
        "ILS",
        "THB",
        "XPT",
        "XPD",
        "BTC",
        "ETH",
    ]
)

MAX_SYMBOL_LENGTH = 32  # MetaTrader symbol names are at most 31 characters
_SYMBOL_CHARS = re.compile(r"^[A-Za-z0-9._#+-]+$")


def _pair_in(letters: str) -> tuple[str, str] | None:
    for i in range(len(letters) - 5):
        base, quote = letters[i : i + 3], letters[i + 3 : i + 6]
        if base in CURRENCY_CODES and quote in CURRENCY_CODES and base != quote:
            return base, quote
    return None


def split_symbol(symbol: str, base: str | None = None, quote: str | None = None) -> tuple[str, str]:
    """``EURUSD`` -> (``EUR``, ``USD``), also for ``EURUSD.m`` and ``m.EURUSD``; ``ValueError`` if it is no pair.

    ``base`` and ``quote`` (the terminal's own ``SYMBOL_CURRENCY_BASE`` / ``_PROFIT``), when both are given and are
    known codes, are used as they are.
    """
    if base and quote:
        b, q = base.upper(), quote.upper()
        if b in CURRENCY_CODES and q in CURRENCY_CODES and b != q:
            return b, q
        raise ValueError(f"symbol currencies {base!r}/{quote!r} are not two different known currency codes")
    if (
        not isinstance(symbol, str)
        or not symbol
        or len(symbol) > MAX_SYMBOL_LENGTH
        or not _SYMBOL_CHARS.match(symbol)
    ):
        raise ValueError(
            f"{symbol!r} is not a symbol name (letters, digits and ._#+- up to {MAX_SYMBOL_LENGTH})"
        )
    pair = _pair_in("".join(ch for ch in symbol.upper() if "A" <= ch <= "Z"))
    if pair is None:
        raise ValueError(
            f"unknown symbol {symbol!r}: cannot tell its base and quote currency; expected a pair of known "
            "currencies such as EURUSD (broker prefixes and suffixes such as m.EURUSD or EURUSD.pro are fine)"
        )
    return pair


def is_pair(symbol: str) -> bool:
    """True when ``split_symbol`` can read ``symbol``."""
    try:
        split_symbol(symbol)
    except ValueError:
        return False
    return True


def point_size(symbol: str) -> float:
    """The smallest price step MetaTrader quotes ``symbol`` in: 0.001 for JPY quotes, 0.01 for gold, else 0.00001.

    Raises ``ValueError`` for a symbol that is not a pair of known currencies.
    """
    base, quote = split_symbol(symbol)
    if base == "XAU":
        return 0.01
    if base == "XAG":
        return 0.001
    return 0.001 if quote == "JPY" else 0.00001


def symbol_in_name(path: str | Path) -> str | None:
    """An FX-style symbol in a file name (``DAT_ASCII_EURUSD_M1_201701.csv`` -> ``EURUSD``), if there is one."""
    for m in re.finditer(r"(?=([A-Z]{6}))", Path(path).stem.upper()):
        pair = _pair_in(m.group(1))
        if pair:
            return "".join(pair)
    return None
