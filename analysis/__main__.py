"""``python -m analysis`` is ``python -m analysis.report``."""

import sys

from .report import main

sys.exit(main())
