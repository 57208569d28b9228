"""The sweep commands that add a plan's missing seeds, and nothing else.

A run's identity is its config hash, and the seed is part of it: a job whose
hash has a FINISHED run is skipped, one whose hash has an unfinished run
resumes it, any other trains a new run. So the command for a group repeats
the overrides its runs were launched with (the ``hydra.overrides`` tag, minus
the seed and the bookkeeping keys set here) and sweeps only seeds the group
does not have: the smallest non-negative integers not among its runs' seeds,
written ``seed=range(a,b)`` when they are consecutive. ``seed=range(0,N)``
would be exact only when a group's seeds are exactly 0..n-1, and would lean on
the skip for the others. Groups that need the same seeds and differ in one
override are merged into one sweep (``sampler=uniform,sumtree``), which Hydra
expands back into exactly those groups.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from per_exp import contract as C

#: keys the command sets itself (or must not repeat): the seed, the store, the experiment, a forced rerun
DROPPED = (C.PARAM_SEED, "rerun", "tracking.uri", "tracking.experiment")
_MERGEABLE = re.compile(r"^[\w.\-+/:@]*$")  # values Hydra reads as one plain choice


@dataclass(frozen=True)
class SweepCommand:
    overrides: tuple[tuple[str, tuple[str, ...]], ...]  # key -> its choices, in the runs' order
    seeds: tuple[int, ...]
    groups: tuple[str, ...]  # the report's groups it adds runs to

    @property
    def n_runs(self) -> int:
        n = len(self.seeds)
        for _, choices in self.overrides:
            n *= len(choices)
        return n

    def argv(self, tracking_uri: str, experiment: str) -> list[str]:
        args = ["python", "-m", "per_exp.train", "-m"]
        args += [f"{k}={','.join(v)}" if k else v[0] for k, v in self.overrides]
        args.append(seed_override(self.seeds))
        args += [f"tracking.uri={tracking_uri}", f"tracking.experiment={experiment}"]
        return args

    def shell(self, tracking_uri: str, experiment: str) -> str:
        return " ".join(shlex.quote(a) for a in self.argv(tracking_uri, experiment))


def _key(token: str) -> str:
    return token.split("=", 1)[0].lstrip("+~") if "=" in token else ""


def run_overrides(tag: str | None) -> tuple[str, ...] | None:
    """A job run's overrides (its ``hydra.overrides`` tag) minus the keys a command sets itself."""
    if tag is None or (isinstance(tag, float) and tag != tag):
        return None
    return tuple(t for t in str(tag).split() if _key(t) not in DROPPED)


def group_overrides(runs: pd.DataFrame) -> tuple[str, ...] | None:
    """The overrides a group's runs were launched with (the most common variant); None without the tag."""
    col = f"tags.{C.TAG_OVERRIDES}"
    if col not in runs:
        return None
    seen = [o for o in (run_overrides(t) for t in runs[col]) if o is not None]
    return Counter(seen).most_common(1)[0][0] if seen else None


def missing_seeds(have: Iterable[int], count: int) -> tuple[int, ...]:
    """The `count` smallest non-negative seeds not in `have`."""
    taken, s = set(have), 0
    out: list[int] = []
    while len(out) < count:
        if s not in taken:
            out.append(s)
        s += 1
    return tuple(out)


def seed_override(seeds: Sequence[int]) -> str:
    s = sorted(seeds)
    if len(s) > 1 and s == list(range(s[0], s[-1] + 1)):
        return f"{C.PARAM_SEED}=range({s[0]},{s[-1] + 1})"
    return f"{C.PARAM_SEED}=" + ",".join(str(x) for x in s)


def _mergeable(a: SweepCommand, b: SweepCommand) -> str | None:
    """The one key in which two commands (same seeds, same keys in the same order) differ, if they can merge."""
    if a.seeds != b.seeds or [k for k, _ in a.overrides] != [k for k, _ in b.overrides]:
        return None
    diff = [k for (k, va), (_, vb) in zip(a.overrides, b.overrides) if va != vb]
    if len(diff) != 1 or not diff[0]:
        return None
    choices = dict(a.overrides)[diff[0]] + dict(b.overrides)[diff[0]]
    if len(set(choices)) != len(choices) or not all(_MERGEABLE.match(c) for c in choices):
        return None
    return diff[0]


def _merge(a: SweepCommand, b: SweepCommand, key: str) -> SweepCommand:
    merged = tuple((k, va + vb if k == key else va) for (k, va), (_, vb) in zip(a.overrides, b.overrides))
    return SweepCommand(merged, a.seeds, a.groups + b.groups)


def plan_commands(
    missing: Mapping[str, int], overrides: Mapping[str, tuple[str, ...] | None], seeds: Mapping[str, Iterable[int]]
) -> tuple[list[SweepCommand], list[str]]:
    """Commands adding `missing[g]` new seeds to each group g; and the groups no command can be written for."""
    cmds, without = [], []
    for g, n in missing.items():
        ov = overrides.get(g)
        if ov is None:
            without.append(g)
            continue
        # the raw left side (a leading + or ~ included) names the key, the right side is its one choice
        pairs = tuple((t.split("=", 1)[0], (t.split("=", 1)[1],)) if "=" in t else ("", (t,)) for t in ov)
        cmds.append(SweepCommand(pairs, missing_seeds(seeds[g], n), (g,)))
    merged = True
    while merged:
        merged = False
        for i in range(len(cmds)):
            for j in range(i + 1, len(cmds)):
                key = _mergeable(cmds[i], cmds[j])
                if key is not None:
                    cmds[i] = _merge(cmds[i], cmds[j], key)
                    del cmds[j]
                    merged = True
                    break
            if merged:
                break
    return cmds, without
