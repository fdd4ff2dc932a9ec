"""pivot-worker: Kazoo-compatible pivot requests served by stateless workers over RabbitMQ."""

from __future__ import annotations

__version__ = "0.1.0"
PRODUCT = "pivot-worker"
USER_AGENT = f"{PRODUCT}/{__version__}"
