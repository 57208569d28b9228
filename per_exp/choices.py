"""Config-group choices: only real options may be picked, and only they are ever listed.

Two holes this closes. `experiment` is an optional group, and Hydra silently
ignores an optional group's option that does not exist: `experiment=seed_noteboook`
trained the default config. And the structured-config schemas registered in the
groups (`sampler_schema`, ...) are options to Hydra: `sampler=sampler_schema`
composed the schema's defaults, and Hydra's own error message listed them.

The command line is checked before Hydra composes anything
(`check_command_line`); what was composed is checked again from Hydra's
record of the choices (`check_composed`), which also covers `glob(...)`
sweeps and choices made inside config files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from per_exp.config import ConfigError

GROUPS = ("sampler", "network", "env", "experiment")
SCHEMA_SUFFIX = "_schema"


def selectable(options: Iterable[str]) -> list[str]:
    """The options a user may pick: every option of the group except the schemas."""
    return sorted(o for o in options if not o.endswith(SCHEMA_SUFFIX))


def _check(group: str, value: str | None, options: Callable[[str], list[str]]) -> None:
    if value is None:
        return
    allowed = selectable(options(group))
    if value not in allowed:
        null = " (or null)" if group == "experiment" else ""
        raise ConfigError(group, value, "one of " + ", ".join(allowed) + null)


def command_line_choices(overrides: list[str]) -> list[tuple[str, str | None]]:
    """(group, option) for every option the overrides pick in a checked group, sweeps expanded.

    `glob(...)` sweeps are left to `check_composed` (expanding them needs Hydra's loader).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    out: list[tuple[str, str | None]] = []
    for o in OverridesParser.create().parse_overrides(overrides=overrides):
        if o.key_or_group not in GROUPS or o.is_delete() or o.value_type == ValueType.GLOB_CHOICE_SWEEP:
            continue
        if o.is_sweep_override():
            out += [(o.key_or_group, v) for v in o.sweep_string_iterator()]
        else:
            v = o.value()
            out.append((o.key_or_group, None if v is None else str(v)))
    return out


def check_command_line(overrides: list[str], conf_dir: Path) -> None:
    """Refuse an option that does not exist (or is a schema) before Hydra composes anything."""
    picked = command_line_choices(overrides)
    if not picked:
        return
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        for group, value in picked:
            _check(group, value, loader.get_group_options)


def check_composed(choices: Mapping[str, str | None]) -> None:
    """Refuse a composed config whose record of choices (`hydra.runtime.choices`) names a non-option.

    Runs inside a Hydra app (the sweep callback, a job), where Hydra's loader is set up.
    """
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    for group in GROUPS:
        if group in choices:
            _check(group, choices[group], loader.get_group_options)


def check_overrides(overrides: list[str]) -> None:
    """`check_command_line` for one job's overrides, inside a Hydra app (the sweep callback)."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    for group, value in command_line_choices(overrides):
        _check(group, value, loader.get_group_options)
