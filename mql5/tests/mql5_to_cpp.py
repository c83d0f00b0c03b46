"""Rewrite MQL5 source into C++ that g++ compiles against ``mql5compat.h``.

Only what is not C++ is touched, line by line, so compiler messages point at the original file and line (a ``#line``
directive names the source):

- ``#property ...`` lines are dropped (they are metadata for MetaEditor);
- an ``#import "lib.dll"`` ... ``#import`` block becomes, for each function, an ``extern "C"`` prototype bound to the
  real symbol with an asm label and an inline wrapper with the MQL5 signature, so the EA's calls link to the real
  library (libzmq here). Arrays passed to a DLL become pointers to their first element, references become pointers;
- ``input``/``sinput`` in front of a global become nothing (tests may set inputs as plain globals);
- dynamic arrays ``T a[]`` become ``MqlArray<T> a`` and array references ``T &a[]`` become ``MqlArray<T> &a``;
- datetime literals ``D'2017.01.01 00:00'`` become the number of seconds they stand for.

Run: ``python mql5/tests/mql5_to_cpp.py SRC_ROOT OUT_ROOT`` (SRC_ROOT is the ``mql5`` folder). Files land in
OUT_ROOT/Include/... and OUT_ROOT/Experts/..., OUT_ROOT/Scripts/... with their names kept.
"""

from __future__ import annotations

import argparse
import calendar
import re
import sys
from pathlib import Path

# Where a DLL's C prototype differs between Windows x64 (LLP64, what MetaTrader runs) and Linux x86-64 (LP64):
# (function, parameter index) -> the C type on Linux. zmq_poll's timeout is a C `long`: 32-bit on Windows, which the
# MQL5 declaration spells `int`, but 64-bit on Linux.
ABI_OVERRIDES = {("zmq_poll", 2): "long"}

C_TYPES = {
    "long": "long",
    "ulong": "unsigned long",
    "int": "int",
    "uint": "unsigned int",
    "short": "short",
    "ushort": "unsigned short",
    "char": "char",
    "uchar": "unsigned char",
    "double": "double",
    "float": "float",
    "bool": "bool",
    "void": "void",
}

PROPERTY = re.compile(r"^\s*#property\b")
IMPORT = re.compile(r'^\s*#import\s*(?:"([^"]*)")?\s*$')
INPUT = re.compile(r"^(\s*)(?:input|sinput)\s+")
ARRAY_REF = re.compile(r"\b((?:const\s+)?)([A-Za-z_]\w*)\s*&\s*([A-Za-z_]\w*)\s*\[\s*\]")
ARRAY_DECL = re.compile(r"\b((?:const\s+|static\s+)*)([A-Za-z_]\w*)\s+([A-Za-z_]\w*)\s*\[\s*\]")
PROTO = re.compile(r"^\s*([A-Za-z_]\w*)\s+([A-Za-z_]\w*)\s*\(([^)]*)\)\s*;\s*(//.*)?$")
PARAM = re.compile(r"^(const\s+)?([A-Za-z_]\w*)\s*(&)?\s*([A-Za-z_]\w*)\s*(\[\s*\])?$")
DATE_LITERAL = re.compile(r"D'(\d{4})\.(\d{2})\.(\d{2})(?:\s+(\d{2}):(\d{2})(?::(\d{2}))?)?'")
KEYWORDS = {"return", "else", "new", "delete", "case", "goto"}


class RewriteError(Exception):
    """MQL5 the rewrite does not handle; the message names file, line and what to change."""


def _param(text: str, where: str) -> tuple[bool, str, bool, str, bool]:
    m = PARAM.match(text.strip())
    if not m:
        raise RewriteError(f"{where}: cannot read the #import parameter {text.strip()!r}")
    const, mtype, ref, name, arr = m.groups()
    return bool(const), mtype, bool(ref), name, bool(arr)


def import_function(line: str, where: str) -> str:
    """One ``#import``ed prototype -> an asm-labelled C prototype plus an inline wrapper with the MQL5 signature."""
    m = PROTO.match(line)
    if not m:
        raise RewriteError(
            f"{where}: expected a prototype like 'int f(long a);' inside #import, got {line.strip()!r}"
        )
    ret, name, params = m.group(1), m.group(2), m.group(3).strip()
    if ret not in C_TYPES:
        raise RewriteError(f"{where}: return type {ret!r} of {name} is not a plain C type")
    c_params, w_params, args = [], [], []
    if params and params != "void":
        for i, text in enumerate(params.split(",")):
            const, mtype, ref, pname, arr = _param(text, where)
            ctype = C_TYPES.get(mtype, mtype)  # structs keep their name
            cq = "const " if const else ""
            if mtype == "string":
                raise RewriteError(f"{where}: {name} takes a string; pass a uchar array to a DLL instead")
            if arr:
                c_params.append(f"{cq}{ctype} *{pname}")
                w_params.append(f"{cq}MqlArray<{mtype}> &{pname}")
                args.append(f"{pname}.data()")
            elif ref:
                c_params.append(f"{cq}{ctype} *{pname}")
                w_params.append(f"{cq}{mtype} &{pname}")
                args.append(f"&{pname}")
            else:
                override = ABI_OVERRIDES.get((name, i))
                c_params.append(f"{override or ctype} {pname}")
                w_params.append(f"{cq}{mtype} {pname}")
                args.append(f"({override}){pname}" if override else pname)
    c_ret = C_TYPES[ret]
    call = f"mql_import_{name}({', '.join(args)})"
    body = f"{call};" if ret == "void" else f"return ({ret}){call};"
    return (
        f'extern "C" {c_ret} mql_import_{name}({", ".join(c_params) or "void"}) __asm__("{name}"); '
        f"inline {ret} {name}({', '.join(w_params)}) {{ {body} }}"
    )


def _arrays(line: str) -> str:
    line = ARRAY_REF.sub(lambda m: f"{m.group(1)}MqlArray<{m.group(2)}> &{m.group(3)}", line)

    def decl(m: re.Match) -> str:
        if m.group(2) in KEYWORDS:
            return m.group(0)
        return f"{m.group(1)}MqlArray<{m.group(2)}> {m.group(3)}"

    return ARRAY_DECL.sub(decl, line)


def _date(m: re.Match) -> str:
    y, mo, d, h, mi, sec = (int(x) if x else 0 for x in m.groups())
    return f"((datetime){calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))})"


def rewrite(text: str, source: str) -> str:
    """The C++ form of one MQL5 file."""
    out = [f'#line 1 "{source}"']
    lines = text.splitlines()
    in_import = False
    for n, line in enumerate(lines, start=1):
        where = f"{source}:{n}"
        m = IMPORT.match(line)
        if m:
            if not in_import and m.group(1) is None:
                raise RewriteError(f'{where}: a closing #import without an opening #import "lib.dll"')
            in_import = m.group(1) is not None
            out.append(f"// {line.strip()}")
            continue
        if in_import:
            stripped = line.strip()
            out.append(import_function(line, where) if stripped and not stripped.startswith("//") else line)
            continue
        if PROPERTY.match(line):
            out.append("")
            continue
        line = INPUT.sub(r"\1", line)
        out.append(_arrays(DATE_LITERAL.sub(_date, line)))
    if in_import:
        raise RewriteError(f"{source}: #import block not closed (add a line '#import')")
    return "\n".join(out) + "\n"


def rewrite_tree(src: Path, out: Path) -> list[Path]:
    """Rewrite every .mqh/.mq5 under ``src`` into ``out`` (same relative paths); returns the files written."""
    written = []
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".mqh", ".mq5") or "tests" in path.relative_to(src).parts:
            continue
        target = out / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rewrite(path.read_text(encoding="utf-8"), str(path.resolve())), encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="the mql5 folder (Include/, Experts/, Scripts/)")
    parser.add_argument("out", type=Path, help="output folder for the C++ form")
    args = parser.parse_args(argv)
    try:
        files = rewrite_tree(args.src, args.out)
    except RewriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"rewrote {len(files)} files into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
