"""gflags-style command-line parsing, so `caffe` command lines work unchanged.

Accepts `-name value`, `-name=value`, `--name value`, `--name=value`; boolean
flags also as a bare `-name` (true) or `-noname` (false). Everything else is a
positional argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import BrewnetError


@dataclass(frozen=True)
class Flag:
    name: str
    default: Any
    help: str = ""

    @property
    def is_bool(self) -> bool:
        return isinstance(self.default, bool)


class FlagError(BrewnetError):
    """A command line the tool cannot understand."""


def _convert(flag: Flag, raw: str) -> Any:
    if flag.is_bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "t", "y"):
            return True
        if low in ("0", "false", "no", "f", "n"):
            return False
        raise FlagError(f"flag -{flag.name} takes true/false, got {raw!r}")
    if isinstance(flag.default, int):
        try:
            return int(raw)
        except ValueError:
            raise FlagError(f"flag -{flag.name} takes an integer, got {raw!r}") from None
    if isinstance(flag.default, float):
        try:
            return float(raw)
        except ValueError:
            raise FlagError(f"flag -{flag.name} takes a number, got {raw!r}") from None
    return raw


def parse_flags(argv: list[str], flags: list[Flag]) -> tuple[dict[str, Any], list[str]]:
    """Return (values by flag name, positional arguments)."""
    known = {f.name: f for f in flags}
    values = {f.name: f.default for f in flags}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            positional.append(arg)
            i += 1
            continue
        body = arg.lstrip("-")
        name, has_value, raw = body.partition("=")
        flag = known.get(name)
        if flag is None and name.startswith("no") and name[2:] in known and known[name[2:]].is_bool:
            values[name[2:]] = False
            i += 1
            continue
        if flag is None:
            names = ", ".join(f"-{n}" for n in sorted(known))
            raise FlagError(f"unknown flag {arg!r}; known flags: {names}")
        if has_value:
            values[name] = _convert(flag, raw)
        elif flag.is_bool:
            values[name] = True
        else:
            if i + 1 >= len(argv):
                raise FlagError(f"flag -{name} needs a value")
            i += 1
            values[name] = _convert(flag, argv[i])
        i += 1
    return values, positional


def usage(verb: str, summary: str, flags: list[Flag]) -> str:
    lines = [f"usage: brewnet {verb} {summary}", "", "flags:"]
    for f in flags:
        lines.append(f"  -{f.name} (default {f.default!r}): {f.help}")
    return "\n".join(lines) + "\n"
