"""Let ``python bench/<script>.py`` import ``bench.*`` and ``pivot_worker`` from the repository root.

Running a file puts its own folder, not the repository root, first on ``sys.path``; each script
imports this module first so that both ``python bench/x.py`` and ``python -m bench.x`` work.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
