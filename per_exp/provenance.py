"""Which code versions wrote into a run, and whether this one may continue it.

A code version is a git commit plus, when the working tree differs from it, a
hash of that difference (`git diff HEAD`): two dirty trees at one commit are
one version only if their differences are equal. A run records every version
that wrote into it in the tag `per_exp.code_history` (`contract.TAG_CODE_HISTORY`),
oldest first; `git.commit` stays the first one's. Continuing a run under
another version is refused unless `resume_across_commits=true`, because its
series would then mix two codes' numbers.

Each segment also names its machine (`per_exp.machine.fingerprint`: CPU and
BLAS kernels), and a run continued on another machine gets a new segment. That
is recorded, not refused: the code is the same, a cluster's preempted job
lands where it lands, and what changes is only the rounding of its numbers
from that episode on, which the history now says.

Pure functions of tags and versions; `tracking.code_version()` reads git.
"""

from __future__ import annotations

import json
from typing import Any

from per_exp import contract as C
from per_exp.config import ConfigError

ALLOW_KEY = "resume_across_commits"


def history_of(tags: dict[str, str]) -> list[dict[str, Any]]:
    """The run's code history; a run from before the tag existed has its one commit, from episode 0."""
    raw = tags.get(C.TAG_CODE_HISTORY)
    if raw:
        return list(json.loads(raw))
    return [
        {
            "commit": tags.get(C.TAG_GIT_COMMIT, "unknown"),
            "dirty": tags.get(C.TAG_GIT_DIRTY, "unknown"),
            "diff": "",
            "from_episode": 0,
            "first_new_step": 0,
        }
    ]


def same_code(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """One version: same commit, both clean, or both dirty with the same recorded difference."""
    if a.get("commit") != b.get("commit") or a.get("commit") in (None, "unknown"):
        return False
    if a.get("dirty") == "false" and b.get("dirty") == "false":
        return True
    return a.get("dirty") == b.get("dirty") == "true" and bool(a.get("diff")) and a.get("diff") == b.get("diff")


def describe(v: dict[str, Any]) -> str:
    commit = str(v.get("commit", "unknown"))[:12]
    if v.get("dirty") == "true":
        return f"commit {commit} with uncommitted changes" + (f" (diff {v['diff']})" if v.get("diff") else "")
    return f"commit {commit}" + (" (clean)" if v.get("dirty") == "false" else "")


def check_resume(run_id: str, tags: dict[str, str], here: dict[str, Any], allowed: bool) -> None:
    """Refuse (ConfigError naming `resume_across_commits`) to continue a run last written by other code."""
    last = history_of(tags)[-1]
    if allowed or same_code(last, here):
        return
    raise ConfigError(
        ALLOW_KEY,
        False,
        f"true to continue run {run_id}, last written by {describe(last)}, with this code at {describe(here)} "
        "(both are then recorded on the run), or rerun=true for a new run",
    )


def continued(
    tags: dict[str, str], here: dict[str, Any], from_episode: int, first_new_step: int
) -> list[dict[str, Any]] | None:
    """The history once `here` continues the run from `from_episode`; None when it is the same version."""
    history = history_of(tags)
    last = history[-1]
    # A segment from before machines were recorded has none: unknown is not "another machine".
    same_machine = "machine" not in last or last.get("machine") == here.get("machine")
    if same_code(last, here) and same_machine:
        return None
    return [*history, {**here, "from_episode": from_episode, "first_new_step": first_new_step}]


def started(here: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**here, "from_episode": 0, "first_new_step": 0}]


def encode(history: list[dict[str, Any]]) -> str:
    return json.dumps(history, separators=(",", ":"))


def skipped_from_other_code(runs: list, here: dict[str, Any]) -> list[str]:
    """Of FINISHED runs about to be skipped, the versions (described) of those last written by other code."""
    out = []
    for r in runs:
        last = history_of(r.data.tags)[-1]
        if not same_code(last, here):
            out.append(describe(last))
    return out
