"""Reading back the messages the project's processes send each other.

Every decoder of a message format (``ioc.updates``, ``alerts.messages``)
checks each field with these and raises ``ValueError`` naming the field
(``items[3].due``), so a reader can log what was wrong and go on.
Fields a decoder does not know are ignored: a newer sender may add some.
"""

from __future__ import annotations

from typing import Any

import orjson


def message(raw: bytes, *kinds: str) -> dict[str, Any]:
    """The JSON object of a message whose ``type`` is one of ``kinds``."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a JSON message: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("a message must be a JSON object")
    if obj.get("type") not in kinds:
        expected = " or ".join(repr(k) for k in kinds)
        raise ValueError(f"field 'type' must be {expected}, not {str(obj.get('type'))[:40]!r}")
    return obj


def present(obj: dict[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise ValueError(f"missing field '{where}{name}'")
    return obj[name]


def mapping(obj: dict[str, Any], name: str, where: str = "") -> dict[str, Any]:
    value = present(obj, name, where)
    if not isinstance(value, dict):
        raise ValueError(f"field '{where}{name}' must be an object")
    return value


def array(obj: dict[str, Any], name: str, where: str = "") -> list[Any]:
    value = present(obj, name, where)
    if not isinstance(value, list):
        raise ValueError(f"field '{where}{name}' must be an array")
    return value


def text(obj: dict[str, Any], name: str, where: str = "") -> str:
    value = present(obj, name, where)
    if not isinstance(value, str):
        raise ValueError(f"field '{where}{name}' must be a string")
    return value


def text_or_none(obj: dict[str, Any], name: str, where: str = "") -> str | None:
    return None if present(obj, name, where) is None else text(obj, name, where)


def is_number(value: Any) -> bool:
    # JSON true and false are Python ints: not numbers here
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(obj: dict[str, Any], name: str, where: str = "") -> float:
    value = present(obj, name, where)
    if not is_number(value):
        raise ValueError(f"field '{where}{name}' must be a number")
    return float(value)


def number_or_none(obj: dict[str, Any], name: str, where: str = "") -> float | None:
    return None if present(obj, name, where) is None else number(obj, name, where)


def integer(obj: dict[str, Any], name: str, where: str = "") -> int:
    value = present(obj, name, where)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"field '{where}{name}' must be an integer")
    return value
