"""MLflow runs -> tidy pandas -> statistics -> figures -> report.

``load`` reads runs (and ``rules`` each run's cap and solve rule), ``axes``
finds the ablation axes, ``scores`` scores each run, ``stats`` holds the
statistics (pure functions), ``plan`` the stopping rule and the seeds a
comparison needs (``commands`` the sweep commands that add them),
``effective`` which config keys take effect, ``analyse`` builds the typed
``Analysis``, ``plots`` the figures, ``render`` report.md/html, ``report`` the
CLI (``python -m analysis.report``). Reads MLflow and the run contract only;
never imports the trainer.
"""
