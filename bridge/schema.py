"""Label schemas as data: a JSON file under ``bridge/schemas/`` defines the fields, their vocabularies and the
7-level sentiment scale. Adding a schema is adding a file; no code changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bridge.errors import UserError

SCHEMA_DIR = Path(__file__).with_name("schemas")
DEFAULT_SCHEMA = "fx_macro"


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().replace("_", " ").replace("-", " ").split())


@dataclass(frozen=True)
class Field:
    """A categorical field with a closed vocabulary and the value used when a model's answer is unusable."""

    name: str
    values: tuple[str, ...]
    default: str

    def canonical(self, text: str) -> str | None:
        """The vocabulary entry ``text`` names (case, spaces, dashes and underscores ignored), or None."""
        wanted = _norm(text)
        for v in self.values:
            if _norm(v) == wanted:
                return v
        return None


@dataclass(frozen=True)
class Schema:
    """One label schema: categorical fields, a sentiment scale of (name, level) pairs, and a free 'related' list."""

    name: str
    instruction: str
    fields: tuple[Field, ...]
    sentiment_levels: tuple[tuple[str, int], ...]
    related_name: str = "related"
    related_none: str = "none"
    market_currency: tuple[tuple[str, str | None], ...] = ()
    description: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        """Output keys in answer order: the categorical fields, then sentiment, then related."""
        return tuple(f.name for f in self.fields) + ("sentiment", self.related_name)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"schema {self.name!r} has no field {name!r}; fields: {[f.name for f in self.fields]}")

    def level_name(self, level: int) -> str:
        for name, lv in self.sentiment_levels:
            if lv == level:
                return name
        raise ValueError(f"sentiment level {level} is not on the {self.name} scale")

    def level_of(self, text: str) -> int | None:
        wanted = _norm(text)
        for name, lv in self.sentiment_levels:
            if _norm(name) == wanted:
                return lv
        return None

    def currency_of_market(self, market: str) -> str | None:
        return dict(self.market_currency).get(market)

    def defaults(self) -> dict[str, str]:
        return {f.name: f.default for f in self.fields}

    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>") -> Schema:
        try:
            fields = tuple(
                Field(f["name"], tuple(f["values"]), f.get("default", f["values"][-1])) for f in d["fields"]
            )
            levels = tuple((str(n), int(v)) for n, v in d["sentiment"])
            schema = cls(
                name=d["name"],
                instruction=d["instruction"],
                fields=fields,
                sentiment_levels=levels,
                related_name=d.get("related", {}).get("name", "related"),
                related_none=d.get("related", {}).get("none", "none"),
                market_currency=tuple(d.get("market_currency", {}).items()),
                description=d.get("description", ""),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(
                f"invalid label schema: {exc!r}", path=source, hint="see bridge/schemas/fx_macro.json"
            ) from exc
        for f in schema.fields:
            if f.default not in f.values:
                raise UserError(
                    f"field {f.name!r}: default {f.default!r} is not one of its values", path=source
                )
            if f.name in ("sentiment", schema.related_name):
                raise UserError(f"field name {f.name!r} is reserved", path=source)
        if sorted(lv for _, lv in levels) != list(range(-3, 4)):
            raise UserError("the sentiment scale must have exactly the levels -3..+3", path=source)
        return schema


@cache
def load_schema(name_or_path: str = DEFAULT_SCHEMA) -> Schema:
    """Load a schema by its name (a file in ``bridge/schemas``) or by a path to a JSON file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCHEMA_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))
        raise UserError(
            f"no label schema {name_or_path!r}", hint=f"known schemas: {', '.join(known)}, or a .json path"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    return Schema.from_dict(data, source=str(path))
