"""Reading and checking the alert configuration files (rules, routing).

Both files are TOML, like the province, calendar and scorecard files, and
are checked the same way: every problem is collected, each naming the entry
and the field (``rules[2].escalation[0]: 'level' must be a whole number
>= 1``), and one ``ConfigError`` names the file and lists them all.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import time
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """An alert configuration file that cannot be used; ``problems`` lists
    each reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or a ``ConfigError`` naming it."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None


class Checker:
    """Collects the problems of one file; each method reads one field and
    returns a usable value (a default when the field is wrong)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.problems.append(f"{where}: {problem}")

    def tables(self, data: dict[str, Any], key: str, where: str = "") -> list[dict[str, Any]]:
        """An array of tables (``[[key]]``); absent is empty."""
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.add(where or key, f"'{key}' must be an array of tables ([[{key}]])")
            return []
        return value

    def text(self, item: dict[str, Any], key: str, where: str, required: bool = True) -> str:
        value = item.get(key)
        if value is None:
            if required:
                self.add(where, f"missing '{key}'")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.add(where, f"'{key}' must be a non-empty string")
            return ""
        return value

    def choice(
        self,
        item: dict[str, Any],
        key: str,
        where: str,
        allowed: Sequence[str],
        default: str | None = None,
    ) -> str:
        if default is not None and key not in item:
            return default
        value = self.text(item, key, where)
        if value and value not in allowed:
            self.add(where, f"'{key}' is {value!r}, expected one of {', '.join(allowed)}")
            return ""
        return value

    def texts(
        self, item: dict[str, Any], key: str, where: str, allowed: Sequence[str] | None = None
    ) -> tuple[str, ...]:
        """A list of strings (absent is empty), each in ``allowed`` if given."""
        value = item.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(where, f"'{key}' must be a list of strings")
            return ()
        if allowed is not None:
            for v in value:
                if v not in allowed:
                    self.add(where, f"'{key}' has {v!r}, expected one of {', '.join(allowed)}")
            value = [v for v in value if v in allowed]
        return tuple(dict.fromkeys(value))

    def number(
        self,
        item: dict[str, Any],
        key: str,
        where: str,
        default: float | None = None,
        minimum: float = 0.0,
    ) -> float | None:
        """A number >= ``minimum``; ``default`` when absent (None: required)."""
        value = item.get(key)
        if value is None:
            if default is None:
                self.add(where, f"missing '{key}'")
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            self.add(where, f"'{key}' must be a number >= {minimum:g}")
            return default
        return float(value)

    def whole(
        self,
        item: dict[str, Any],
        key: str,
        where: str,
        default: int | None = None,
        minimum: int = 1,
    ) -> int:
        value = item.get(key)
        if value is None:
            if default is None:
                self.add(where, f"missing '{key}'")
            return default or minimum
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.add(where, f"'{key}' must be a whole number >= {minimum}")
            return default or minimum
        return value

    def clock_time(self, item: dict[str, Any], key: str, where: str) -> int | None:
        """A local time of day, ``"HH:MM"`` (or a TOML time), as seconds
        after midnight; None when absent or wrong (wrong is a problem)."""
        value = item.get(key)
        if value is None:
            self.add(where, f"missing '{key}'")
            return None
        if isinstance(value, time):
            return value.hour * 3600 + value.minute * 60 + value.second
        try:
            h, m = str(value).split(":")
            hh, mm = int(h), int(m)
        except ValueError:
            hh = mm = -1
        if not (0 <= hh <= 23 and 0 <= mm <= 59):
            self.add(where, f"'{key}' must be a local time like \"07:30\"")
            return None
        return hh * 3600 + mm * 60

    def unique(self, seen: set[str], key: str, where: str, what: str = "id") -> None:
        if key and key in seen:
            self.add(where, f"duplicate {what} {key!r}")
        seen.add(key)

    def unknown_keys(self, item: dict[str, Any], known: Sequence[str], where: str) -> None:
        """A misspelt key would silently fall back to a default: refuse it."""
        for key in item:
            if key not in known:
                self.add(where, f"unknown key {key!r} (known: {', '.join(known)})")

    def raise_if_any(self, source: str) -> None:
        if self.problems:
            raise ConfigError(source, self.problems)
