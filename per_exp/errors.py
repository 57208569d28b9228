"""The error every refusal of bad input raises: one line naming the key, the value and what is allowed.

It lives apart from the config schema so that the run contract and the
credential rules (which `analysis/` also uses) can raise it without
importing Hydra.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config value that is not allowed; names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"invalid config: {key}={value!r}; allowed: {allowed}")
