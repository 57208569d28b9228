"""The training machinery: env, replay and samplers, networks, the DDQN agent and the Trainer loop.

Knows nothing of MLflow, Hydra or files: `per_exp.job` wires it to a run.
"""
