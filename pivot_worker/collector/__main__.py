"""``python -m pivot_worker.collector``: the same as the ``pivot-collector`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
