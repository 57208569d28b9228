"""The command line's `key=value` overrides checked against the config schema before Hydra composes.

Hydra refuses a misspelt key or a value of the wrong type too, but late and
in several lines ("Error merging override ... could not be converted to
Float", then a hint about HYDRA_FULL_ERROR), and it names neither the keys
that exist nor the type wanted. Here each override is walked down the
dataclasses of `per_exp.config` (so `sampler.alpah=1` is caught with the
likely intended key) and its value, or each value of a sweep, is put into a
node of the schema by OmegaConf, exactly as Hydra's merge would: what it
refuses is refused here first, with one line naming the key, the value and
the type allowed. Nothing is composed and no store is touched.

Left to Hydra on purpose: below the top level, `+`/`~`/`++` overrides (adding
and deleting keys is Hydra's business; their top-level name is checked),
`hydra...` keys, `key@package` overrides, interpolations, `interval(...)`
and `glob(...)` sweeps, and group choices (`sampler=uniform`), which
`per_exp.choices` checks against the options that exist.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from per_exp.config import Config
from per_exp.errors import ConfigError

# Config-group names that are not keys of Config (their options write top-level keys).
_GROUP_ONLY = ("experiment", "ablation")

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def top_level_keys() -> list[str]:
    return sorted({f.name for f in dataclasses.fields(Config)} | set(_GROUP_ONLY) | {"hydra"})


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(hint: Any) -> str:
    """`int` -> 'an integer', `float | None` -> 'a number or null'."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_describe(a) for a in inner) + " or null"
    return _TYPE_WORDS.get(hint, getattr(hint, "__name__", str(hint)))


def _unknown(key: str, value: Any, part: str, owner: str, allowed: list[str]) -> ConfigError:
    close = difflib.get_close_matches(part, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(key, value, f"a key of {owner}{hint}: " + ", ".join(allowed))


def _check_top(key: str, shown: Any) -> None:
    top = key.split(".", 1)[0]
    if top not in top_level_keys() and not top.startswith("hydra"):
        raise _unknown(key, shown, top, "the config", top_level_keys())


def _leaf(key: str, shown: Any) -> tuple[type, str] | None:
    """(dataclass holding the key, field name), or None when the key is a group choice or not ours.

    Raises ConfigError for a key the schema does not have.
    """
    parts = key.split(".")
    if parts[0] in _GROUP_ONLY or parts[0].startswith("hydra"):
        return None
    cls: type = Config
    for i, part in enumerate(parts):
        hints = _hints(cls)
        owner = "the config" if i == 0 else ".".join(parts[:i])
        if part not in hints:
            allowed = top_level_keys() if i == 0 else sorted(hints)
            raise _unknown(key, shown, part, owner, allowed)
        hint = hints[part]
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(hint):
            if last:
                return None  # `sampler=uniform`: a group choice, per_exp.choices checks it
            cls = typing.cast(type, hint)
            continue
        if not last:
            where = ".".join(parts[: i + 1])
            raise ConfigError(key, shown, f"{where} holds {_describe(hint)}, not keys")
        return cls, part
    return None  # unreachable: the loop returns on its last part


def _values(override: Any) -> list[Any]:
    from hydra.core.override_parser.types import ValueType

    if override.value_type in (ValueType.INTERVAL_SWEEP, ValueType.GLOB_CHOICE_SWEEP):
        return []
    if override.is_sweep_override():
        return list(override.sweep_iterator())
    return [override.value()]


def check(overrides: list[str]) -> None:
    """Raise ConfigError for the first override whose key is not in the schema or whose value cannot be its type."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    parser = OverridesParser.create()
    for text in overrides:
        if text.startswith("-") or "=" not in text:
            continue
        try:
            ov = parser.parse_override(text)
        except HydraException:
            continue  # a syntax error: Hydra's own message shows where in the string it is
        key, shown = ov.key_or_group, text.split("=", 1)[1]
        if ov.package is not None or "/" in key:
            continue
        if ov.type != OverrideType.CHANGE:
            _check_top(key, shown)  # adding or deleting a key: Hydra's business below the top level
            continue
        found = _leaf(key, shown)
        if found is None:
            continue
        cls, name = found
        node = OmegaConf.structured(cls)
        for value in _values(ov):
            if isinstance(value, str) and "${" in value:
                continue  # resolved only when the config is composed
            try:
                node[name] = value
            except ValidationError:
                raise ConfigError(key, value, _describe(_hints(cls)[name])) from None
