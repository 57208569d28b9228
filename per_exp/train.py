"""Entry point: `python -m per_exp.train [overrides]` (add `-m` for a sweep).

Checks the command line (keys and value types, config-group options) before Hydra
composes anything, then lets Hydra compose each job's config and hands it to
`per_exp.job.run_job`. A launch ends the way it should whatever happens: a
deliberate stop (Ctrl-C, SIGTERM) ends the in-flight runs and the sweep's
parent KILLED with one line and no traceback, and no worker process outlives
the launch. Nothing else imports this module.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from per_exp import choices, credentials, overrides, processes, sweep
from per_exp.config import ConfigError, register_configs
from per_exp.job import run_job

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

register_configs()
# ${per_exp_launch:} in conf/config.yaml's output folders: random per launch, cached like Hydra's
# ${now:...}, so a launch's jobs (in workers too) see the value their launcher drew.
OmegaConf.register_new_resolver("per_exp_launch", lambda: secrets.token_hex(3), use_cache=True, replace=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> dict | None:
    return run_job(cfg)


def main() -> None:
    argv = sys.argv[1:]
    given = [a for a in argv if not a.startswith("-")]
    try:
        overrides.check(given)
        credentials.check_overrides(given)  # before Hydra writes them to .hydra/
        choices.check_command_line(given, CONF_DIR)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    multirun = "-m" in argv or "--multirun" in argv
    try:
        if multirun:
            with processes.launch_stops(
                sweep.in_flight_settled, grace=sweep.STOP_GRACE_SECONDS, busy=sweep.in_flight_pids
            ):
                _hydra_main()
        else:
            _hydra_main()
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, processes.Stopped) else 2
        sweep.close_stopped(signum)  # the parent KILLED and the summary, once, if a sweep was open
        raise SystemExit(128 + signum) from None
    finally:
        if multirun:
            processes.reap()


if __name__ == "__main__":
    main()
    processes.quick_exit()  # main returned: every run is ended and logged (an error raised instead)
