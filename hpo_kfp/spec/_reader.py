"""Walks a parsed YAML mapping while tracking the field path, for precise errors."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from hpo_kfp.errors import SpecError

__all__ = ["INT32_MAX", "Node", "show"]

INT32_MAX = 2**31 - 1
"""The largest count a spec may give (Katib's ``maxTrialCount`` and the like are int32)."""


def show(value: Any) -> str:
    """Formats a received value for an error message."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return f"a list {value!r}" if len(repr(value)) < 80 else "a list"
    return repr(value)


class Node:
    """A mapping found at ``path`` in the spec, read field by field.

    Every getter raises :class:`SpecError` naming the full field path when the value is
    missing or of the wrong shape.
    """

    def __init__(self, data: Any, path: str, known: Sequence[str] | None = None) -> None:
        if not isinstance(data, Mapping):
            raise SpecError(path, "must be a mapping", show(data))
        if known is not None:
            for key in data:
                if key not in known:
                    raise SpecError(
                        f"{path}.{key}",
                        f"must be one of the fields {', '.join(known)} (unknown field)",
                        show(data[key]),
                    )
        self.data: Mapping[str, Any] = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def child(self, key: str, known: Sequence[str] | None = None) -> Node | None:
        if not self.has(key):
            return None
        return Node(self.data[key], self.at(key), known)

    def required_child(self, key: str, known: Sequence[str] | None = None) -> Node:
        node = self.child(key, known)
        if node is None:
            raise SpecError(self.at(key), "must be specified", "nothing")
        return node

    def string(self, key: str, *, required: bool = False, choices: Sequence[str] = ()) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise SpecError(self.at(key), "must be specified", "nothing")
            return None
        if not isinstance(value, str):
            raise SpecError(self.at(key), "must be a string", show(value))
        if choices and value not in choices:
            raise SpecError(self.at(key), f"must be one of {', '.join(choices)}", show(value))
        return value

    def integer(self, key: str, *, minimum: int | None = None) -> int | None:
        """Reads an integer; at most :data:`INT32_MAX`: the counts of Katib's and Trainer's
        APIs are int32."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(self.at(key), "must be an integer", show(value))
        if minimum is not None and value < minimum:
            rule = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
            raise SpecError(self.at(key), rule, show(value))
        if value > INT32_MAX:
            raise SpecError(
                self.at(key), f"must be at most {INT32_MAX} (an int32, as in Katib's API)", show(value)
            )
        return value

    def number(self, key: str) -> float | None:
        """Reads a number written as a number or, as Katib does, as a string."""
        value = self.data.get(key)
        if value is None or value == "":
            return None
        return to_number(value, self.at(key))

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise SpecError(self.at(key), "must be true or false", show(value))
        return value

    def items(self, key: str, *, required: bool = False) -> Iterator[tuple[str, Any]]:
        """Yields ``(path, item)`` for each item of the list at ``key``."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise SpecError(self.at(key), "must be specified", "nothing")
            return
        if not isinstance(value, list):
            raise SpecError(self.at(key), "must be a list", show(value))
        for index, item in enumerate(value):
            yield f"{self.at(key)}[{index}]", item

    def strings(self, key: str) -> tuple[str, ...]:
        result = []
        for path, item in self.items(key):
            if not isinstance(item, str) or not item:
                raise SpecError(path, "must be a non-empty string", show(item))
            result.append(item)
        return tuple(result)

    def string_map(self, key: str) -> dict[str, str]:
        node = self.child(key)
        if node is None:
            return {}
        result = {}
        for name, value in node.data.items():
            if not isinstance(value, str):
                raise SpecError(node.at(str(name)), "must be a string", show(value))
            result[str(name)] = value
        return result


def to_number(value: Any, path: str) -> float:
    """Parses ``value`` (a number, or a string holding one) into a finite float."""
    if isinstance(value, bool):
        raise SpecError(path, "must be a number", show(value))
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            raise SpecError(path, "must be a finite number", show(value)) from None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise SpecError(path, "must be a number", show(value)) from None
    else:
        raise SpecError(path, "must be a number", show(value))
    if not math.isfinite(number):
        raise SpecError(path, "must be a finite number", show(value))
    return number
