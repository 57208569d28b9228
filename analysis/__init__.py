"""MLflow runs -> tidy pandas -> statistics -> figures -> report.

``load`` reads runs, ``axes`` finds the ablation axes, ``stats`` holds the
statistics (pure functions), ``plots`` the figures, ``report`` the CLI
(``python -m analysis.report``). Reads MLflow only; never imports the trainer.
"""
