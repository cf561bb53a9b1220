"""The core: settings, event contracts, topics, the injected clock, the
administrative registry, the working calendar and SLA clock, KPI and
scorecard definitions, and the composition root (``ioc.cli``, ``ioc.demo``)."""
