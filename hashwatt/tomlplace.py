"""Where a key sits in a TOML file: the line number a config problem points at.

tomllib returns values without positions; this scans the text for table headers and keys,
which is enough for the config files people write (one key per line, tables and arrays of
tables, inline tables counted as their key's line).
"""

from __future__ import annotations

import re

HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")

Loc = tuple[str | int, ...]


def _parts(dotted: str) -> list[str]:
    return [p.strip().strip("\"'") for p in dotted.split(".")]


class TomlPlaces:
    """Line numbers (1-based) of tables, array elements and keys in a TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Loc, int] = {}
        counts: dict[Loc, int] = {}
        arrays: set[tuple[str, ...]] = set()
        current: Loc = ()
        for number, line in enumerate(text.splitlines(), 1):
            header = HEADER.match(line)
            if header:
                names = _parts(header.group(2))
                loc = self._resolve(names[:-1], arrays, counts)
                if header.group(1) == "[[":
                    arrays.add(tuple(names))
                    array: Loc = (*loc, names[-1])
                    index = counts.get(array, -1) + 1
                    counts[array] = index
                    current = (*array, index)
                else:
                    current = (*loc, names[-1])
                self.lines.setdefault(current, number)
                continue
            key = KEY.match(line)
            if key:
                self.lines.setdefault((*current, *_parts(key.group(1))), number)

    @staticmethod
    def _resolve(names: list[str], arrays: set[tuple[str, ...]],
                 counts: dict[Loc, int]) -> Loc:
        """A dotted parent path with the current index of each array of tables in it."""
        loc: Loc = ()
        for i, name in enumerate(names):
            loc = (*loc, name)
            if tuple(names[:i + 1]) in arrays:
                loc = (*loc, counts.get(loc, 0))
        return loc

    def line(self, loc: Loc) -> int | None:
        """The line of the longest known prefix of loc, or None."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None
