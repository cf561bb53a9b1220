"""Kafka topic names. One prefix (``IOC_TOPIC_PREFIX``) lets several
deployments share a broker."""

from __future__ import annotations

from dataclasses import dataclass

# A message with this header and an empty value moves an event-time worker's
# clock for its partition to the given instant (epoch seconds, as text).
# Replays send one per partition at their end.
WATERMARK_HEADER = "ioc-watermark"
# When the events of a message reached the edge (the HTTP ingest or the MQTT
# bridge), epoch seconds as text, on the edge's wall clock: carried on so
# that every later stage can tell how long they have been on their way.
EDGE_HEADER = "ioc-edge"


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "ioc."

    @property
    def procedure_events(self) -> str:
        return f"{self.prefix}procedure-events"

    @property
    def sensor_readings(self) -> str:
        return f"{self.prefix}sensor-readings"

    @property
    def kpi_updates(self) -> str:
        return f"{self.prefix}kpi-updates"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}dead-letters"

    def all(self) -> tuple[str, ...]:
        return (
            self.procedure_events,
            self.sensor_readings,
            self.kpi_updates,
            self.alerts,
            self.dead_letters,
        )
