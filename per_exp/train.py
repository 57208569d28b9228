"""Entry point: `python -m per_exp.train [overrides]` (add `-m` for a sweep).

Checks the command line's top-level keys, then lets Hydra compose each job's
config and hands it to `per_exp.job.run_job`. Nothing else imports this module.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from per_exp import credentials
from per_exp.config import ConfigError, check_override_keys, register_configs
from per_exp.job import run_job

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> dict | None:
    return run_job(cfg)


def main() -> None:
    try:
        overrides = [a for a in sys.argv[1:] if not a.startswith("-")]
        check_override_keys(overrides)
        credentials.check_overrides(overrides)  # before Hydra writes them to .hydra/
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    _hydra_main()


if __name__ == "__main__":
    main()
