"""Observability: what Director tells the outside about its requests.

* ``stats`` - in-process counters per deployment (``Metrics``, ``DeploymentStats``) that
  ``health`` and the latency strategy read;
* ``observer`` - the one interface the engine reports to (``Observer``, ``RequestObserver``);
* ``telemetry`` - the Director's observer: Prometheus metrics (``prometheus``), OpenTelemetry
  spans (``tracing``) and one log line per request (``logline``).

Importing this package is cheap: prometheus_client and OpenTelemetry are imported only when
used (see ``docs/observability.md``).
"""

from director_llm.observability.observer import NOOP_OBSERVER, NOOP_REQUEST, Observer, RequestObserver
from director_llm.observability.stats import DeploymentStats, Metrics

__all__ = ["NOOP_OBSERVER", "NOOP_REQUEST", "DeploymentStats", "Metrics", "Observer", "RequestObserver"]
