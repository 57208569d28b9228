"""Plain helpers for the tests: functions and constants, imported by name.

Pytest fixtures live in `tests/conftest.py` only. What is here is ordinary
code that tests call with their own arguments (compose a config, run the
CLI, build a store run by run), often from parametrization or from other
helpers, where a fixture could not be used; an explicit import also lets
the type checker and the reader follow it.

- `cli`: the real config tree and the real command line.
- `stores`: MLflow stores written run by run with the real client (analysis tests).
- `sweeps`: real sweeps in subprocesses, real signals, store queries (scaling tests).
- `vecenv`: a VecEnv stepped in lockstep against real gymnasium envs, one per slot.
"""
