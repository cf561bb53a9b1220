"""The database schema, for TimescaleDB when it is there and plain PostgreSQL
when it is not.

The tables are the same on both; TimescaleDB turns the time-ordered ones into
hypertables, adds continuous aggregates (``kpi_daily``,
``sensor_readings_hourly``), columnstore compression and retention policies.
On plain PostgreSQL the aggregates are ordinary views over ``date_bin``, so
every query reads the same names either way. ``ioc db migrate`` applies it
and says which mode it used.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import psycopg

from alerts.tables import alert_tables
from ioc.kpis import FLOWS, LEVELS

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Local days start at 00:00 in Asia/Ho_Chi_Minh (UTC+7).
DAY_ORIGIN = "2000-01-01 00:00:00+07"


def column(name: str) -> str:
    """A counter name as a SQL column name."""
    safe = name.replace(".", "_").replace("-", "_").replace("+", "p")
    return f'"{safe}"'


FLOW_COLUMNS = [column(n) for n in FLOWS]
LEVEL_COLUMNS = [column("level_" + n) for n in LEVELS]


def _flows_ddl() -> str:
    return ",\n    ".join(f"{c} bigint NOT NULL DEFAULT 0" for c in FLOW_COLUMNS)


def _levels_ddl() -> str:
    return ",\n    ".join(f"{c} bigint" for c in LEVEL_COLUMNS)


def tables() -> list[str]:
    return [
        """CREATE TABLE IF NOT EXISTS schema_info (
    version int PRIMARY KEY,
    timescaledb text,
    applied_at timestamptz NOT NULL DEFAULT now()
)""",
        # The procedure topic whose partitions the state below belongs to.
        """CREATE TABLE IF NOT EXISTS topic_binding (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    topic text NOT NULL,
    partitions int NOT NULL,
    bound_at timestamptz NOT NULL DEFAULT now()
)""",
        # A row while `ioc kpis recompute` rebuilds the derived tables: if it
        # stops half-way, workers must not start on the half-rebuilt state.
        """CREATE TABLE IF NOT EXISTS recompute_running (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    started_at timestamptz NOT NULL DEFAULT now()
)""",
        # Every accepted procedure event that changed a dossier, as received.
        """CREATE TABLE IF NOT EXISTS procedure_events (
    ts timestamptz NOT NULL,
    event_id text NOT NULL,
    dossier_id text NOT NULL,
    type text NOT NULL,
    part smallint NOT NULL,
    seq bigint NOT NULL,
    body json NOT NULL
)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS procedure_events_event_id "
        "ON procedure_events (event_id, ts)",
        "CREATE INDEX IF NOT EXISTS procedure_events_dossier ON procedure_events (dossier_id)",
        "CREATE INDEX IF NOT EXISTS procedure_events_part_seq ON procedure_events (part, seq)",
        # Scope keys ("commune:00166") and the small ids counter rows use.
        """CREATE TABLE IF NOT EXISTS scopes (
    id serial PRIMARY KEY,
    key text NOT NULL UNIQUE
)""",
        # Flow counters per scope and hour, per partition (summed on read).
        f"""CREATE TABLE IF NOT EXISTS kpi_hourly (
    hour timestamptz NOT NULL,
    scope_id int NOT NULL,
    part smallint NOT NULL,
    {_flows_ddl()},
    PRIMARY KEY (scope_id, part, hour)
)""",
        # The 1-minute series, append-only: each commit adds flow increments by
        # their instant's minute, and the levels sampled at a minute's end
        # (NULL in rows that carry flows only). Readers sum the flows and take
        # the last levels. Appending (plain COPY, no upsert) is ten times
        # cheaper, and exact because every commit is written once.
        f"""CREATE TABLE IF NOT EXISTS kpi_points (
    minute timestamptz NOT NULL,
    scope_id int NOT NULL,
    part smallint NOT NULL,
    {_flows_ddl()},
    {_levels_ddl()}
)""",
        "CREATE INDEX IF NOT EXISTS kpi_points_scope ON kpi_points (scope_id, minute)",
        # The counters last published per scope and partition, for REST reads.
        """CREATE TABLE IF NOT EXISTS kpi_latest (
    scope text NOT NULL,
    part smallint NOT NULL,
    at timestamptz NOT NULL,
    counters jsonb NOT NULL,
    PRIMARY KEY (scope, part)
)""",
        """CREATE TABLE IF NOT EXISTS worker_partitions (
    part smallint PRIMARY KEY,
    seq bigint NOT NULL,
    clock timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)""",
        # The dossier store of a partition as of raw event ``seq``, in chunks.
        """CREATE TABLE IF NOT EXISTS dossier_snapshots (
    part smallint NOT NULL,
    seq bigint NOT NULL,
    chunk int NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    body bytea NOT NULL,
    PRIMARY KEY (part, seq, chunk)
)""",
        # SLA transitions of dossiers: at_risk, overdue, cleared.
        """CREATE TABLE IF NOT EXISTS sla_transitions (
    at timestamptz NOT NULL,
    dossier_id text NOT NULL,
    transition text NOT NULL,
    due timestamptz,
    consumed_hours real NOT NULL,
    allotted_hours real NOT NULL,
    commune text,
    agency text NOT NULL,
    centre text NOT NULL,
    procedure text NOT NULL,
    field text NOT NULL
)""",
        "CREATE INDEX IF NOT EXISTS sla_transitions_dossier ON sla_transitions (dossier_id, at)",
        # The worker's outbox: a transition is stored unpublished in the commit
        # that decides it and marked once the broker has it, so one a worker
        # could not send before it died is sent by the next owner of its
        # partition. Rows from before these columns count as sent.
        "ALTER TABLE sla_transitions ADD COLUMN IF NOT EXISTS part smallint",
        "ALTER TABLE sla_transitions ADD COLUMN IF NOT EXISTS published boolean NOT NULL "
        "DEFAULT true",
        "CREATE INDEX IF NOT EXISTS sla_transitions_unpublished ON sla_transitions (part) "
        "WHERE NOT published",
        """CREATE TABLE IF NOT EXISTS sensor_readings (
    ts timestamptz NOT NULL,
    event_id text NOT NULL,
    sensor_id text NOT NULL,
    area text NOT NULL,
    kind text NOT NULL,
    "values" jsonb NOT NULL
)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS sensor_readings_event_id "
        "ON sensor_readings (event_id, ts)",
        # One reading per sensor and instant: the first stored wins, as in the
        # sensor stage's windows, so the table, the windows rebuilt from it after
        # a restart, and the REST series agree. Earlier releases kept every event
        # id: their later duplicates go once, before the index is made.
        """DO $$ BEGIN
    IF to_regclass('sensor_readings_sensor_ts') IS NULL THEN
        DELETE FROM sensor_readings a USING sensor_readings b
        WHERE a.sensor_id = b.sensor_id AND a.ts = b.ts AND a.event_id > b.event_id;
    END IF;
END $$""",
        "CREATE UNIQUE INDEX IF NOT EXISTS sensor_readings_sensor_ts "
        "ON sensor_readings (sensor_id, ts DESC)",
        "DROP INDEX IF EXISTS sensor_readings_sensor",
        # The sensor stage's view of each sensor (its last reading, windows, AQI,
        # flood level, health: docs/sensors.md, "Status"), rewritten by the
        # commit that changes it; ``part`` is the sensor partition that owns it.
        """CREATE TABLE IF NOT EXISTS sensor_status (
    sensor_id text PRIMARY KEY,
    area text NOT NULL,
    kind text NOT NULL,
    part smallint NOT NULL,
    ts timestamptz,
    status jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)""",
        "CREATE INDEX IF NOT EXISTS sensor_status_part ON sensor_status (part)",
        # Hourly index values per station and scale, labelled by the hour's end
        # (a value for 01:00 covers 00:00-01:00); recomputed when a late reading
        # changes its hour. No row is "no data".
        """CREATE TABLE IF NOT EXISTS sensor_aqi (
    hour timestamptz NOT NULL,
    sensor_id text NOT NULL,
    area text NOT NULL,
    scale text NOT NULL,
    aqi smallint NOT NULL,
    band text NOT NULL,
    dominant text NOT NULL,
    detail jsonb NOT NULL
)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS sensor_aqi_key ON sensor_aqi (sensor_id, scale, hour)",
        # Per sensor partition: the next Kafka offset its state covers, and the
        # state that is not rebuilt from the stored readings (flood levels,
        # health, signals not yet sent), written in the same transaction.
        """CREATE TABLE IF NOT EXISTS sensor_partitions (
    part smallint PRIMARY KEY,
    next_offset bigint NOT NULL,
    state jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
)""",
        # The first event to use each event id (docs/interfaces.md, "Event
        # ids"): a later event with the same id and other content is refused.
        # A plain table on TimescaleDB too, because a hypertable's unique
        # index must include its time column.
        """CREATE TABLE IF NOT EXISTS event_ids (
    event_id text PRIMARY KEY,
    digest bigint NOT NULL,
    dossier_id text NOT NULL,
    type text NOT NULL,
    ts timestamptz NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
)""",
        # One row per running worker, rewritten every IOC_HEARTBEAT_INTERVAL s:
        # what /readyz reads to tell a moving pipeline from a stalled one.
        """CREATE TABLE IF NOT EXISTS worker_heartbeats (
    worker text PRIMARY KEY,
    at timestamptz NOT NULL,
    started_at timestamptz NOT NULL,
    partitions int[] NOT NULL,
    last_commit_at timestamptz,
    pending_events bigint NOT NULL DEFAULT 0,
    oldest_pending_at timestamptz,
    failing_since timestamptz,
    last_error text,
    lag jsonb NOT NULL DEFAULT '{}',
    -- since when the lag has been above zero without a break
    lag_since timestamptz
)""",
        """CREATE TABLE IF NOT EXISTS dead_letters (
    received_at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL,
    reason text NOT NULL,
    raw bytea NOT NULL,
    -- topic/partition/offset#item, or the MQTT topic, the bytes came from
    origin text
)""",
        *alert_tables(),
    ]


def _daily_select(bucket: str) -> str:
    sums = ", ".join(f"sum({c}) AS {c}" for c in FLOW_COLUMNS)
    return f"""SELECT {bucket} AS day, scope_id, part, {sums}
FROM kpi_hourly GROUP BY {bucket}, scope_id, part"""


def _sensor_hourly_select(bucket: str) -> str:
    return f"""SELECT {bucket} AS hour, sensor_id, area, kind,
    count(*) AS readings,
    avg((("values"->>'pm25')::double precision)) AS pm25,
    avg((("values"->>'pm10')::double precision)) AS pm10,
    max((("values"->>'level')::double precision)) AS level_max,
    sum((("values"->>'rain_mm')::double precision)) AS rain_mm,
    sum((("values"->>'vehicles')::double precision)) AS vehicles,
    avg((("values"->>'laeq')::double precision)) AS laeq
FROM sensor_readings GROUP BY {bucket}, sensor_id, area, kind"""


# (table, time column, chunk interval, columnstore segmentby, orderby, compress after, drop after)
# TimescaleDB wants every column of a unique index among the segmentby or orderby
# columns, and warns on each ALTER otherwise: a conflict check on compressed data
# (the sinks' ON CONFLICT on (event_id, ts)) then finds the batches to decompress by
# their min/max. event_id comes after ts, so batches stay in time order.
HYPERTABLES = (
    ("procedure_events", "ts", "7 days", "part", "ts DESC, event_id", "30 days", None),
    ("kpi_hourly", "hour", "30 days", "scope_id, part", "hour DESC", "400 days", None),
    ("kpi_points", "minute", "1 day", "scope_id, part", "minute DESC", "7 days", "400 days"),
    ("sla_transitions", "at", "30 days", "", "at DESC", "90 days", None),
    ("sensor_readings", "ts", "1 day", "sensor_id", "ts DESC, event_id", "7 days", "730 days"),
    ("sensor_aqi", "hour", "30 days", "sensor_id, scale", "hour DESC", "90 days", None),
    ("dead_letters", "received_at", "7 days", "source", "received_at DESC", "30 days", "90 days"),
)

# Continuous aggregates (view, query, end offset, refresh every), real-time: buckets
# after the last refresh (at least those within the end offset) are computed from
# the table at query time, older ones are read as materialized.
_DAY = f"time_bucket(INTERVAL '1 day', hour, origin => TIMESTAMPTZ '{DAY_ORIGIN}')"
_HOUR = "time_bucket(INTERVAL '1 hour', ts)"
AGGREGATES = (
    ("kpi_daily", _daily_select(_DAY), "1 day", "1 hour"),
    ("sensor_readings_hourly", _sensor_hourly_select(_HOUR), "1 hour", "30 minutes"),
)


def refresh_statement(view: str) -> str:
    """Materialize an aggregate's whole history, short of its policy's end offset."""
    end = next(end for name, _, end, _ in AGGREGATES if name == view)
    return f"CALL refresh_continuous_aggregate('{view}', NULL, now() - INTERVAL '{end}')"


def timescale_statements(refresh: Collection[str] = ()) -> list[str]:
    """The TimescaleDB statements, with a whole-history refresh of the aggregates
    named in ``refresh``."""
    out: list[str] = []
    for table, col, chunk, segment, order, compress, drop in HYPERTABLES:
        out.append(
            f"SELECT create_hypertable('{table}', by_range('{col}', INTERVAL '{chunk}'), "
            "if_not_exists => TRUE, migrate_data => TRUE)"
        )
        settings = ["timescaledb.enable_columnstore = true", f"timescaledb.orderby = '{order}'"]
        if segment:
            settings.append(f"timescaledb.segmentby = '{segment}'")
        out.append(f"ALTER TABLE {table} SET ({', '.join(settings)})")
        out.append(
            f"CALL add_columnstore_policy('{table}', after => INTERVAL '{compress}', "
            "if_not_exists => TRUE)"
        )
        if drop:
            out.append(
                f"SELECT add_retention_policy('{table}', drop_after => INTERVAL '{drop}', "
                "if_not_exists => TRUE)"
            )
    for view, select, end, every in AGGREGATES:
        out.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} WITH (timescaledb.continuous) AS "
            f"{select} WITH NO DATA"
        )
        # also turns the materialized-only aggregates of earlier releases real-time
        out.append(f"ALTER MATERIALIZED VIEW {view} SET (timescaledb.materialized_only = false)")
        # The policy's window starts at the beginning of time (start_offset NULL), so late
        # data of any age reaches the aggregate. That is cheap: a refresh re-materializes
        # only the ranges the invalidation log marks as changed since the last one, not
        # the whole window (only a forced refresh does that). A policy of an earlier
        # release with another window is replaced: TimescaleDB refuses overlapping ones.
        # It also means the aggregate keeps no more history than its table: dropping old
        # chunks (retention) invalidates their range, and the refresh then empties it.
        out.append(
            "SELECT delete_job(job_id) FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_refresh_continuous_aggregate' "
            f"AND hypertable_schema = current_schema() AND hypertable_name = '{view}' "
            "AND ((config->>'start_offset')::interval IS NOT NULL "
            f"OR (config->>'end_offset')::interval IS DISTINCT FROM INTERVAL '{end}' "
            f"OR schedule_interval <> INTERVAL '{every}')"
        )
        # Before the policy: TimescaleDB refuses a refresh while another runs.
        if view in refresh:
            out.append(refresh_statement(view))
        # first run one interval on, not at once: the refresh above has just run
        out.append(
            f"SELECT add_continuous_aggregate_policy('{view}', start_offset => NULL, "
            f"end_offset => INTERVAL '{end}', schedule_interval => INTERVAL '{every}', "
            f"initial_start => now() + INTERVAL '{every}', if_not_exists => TRUE)"
        )
    return out


def postgres_statements() -> list[str]:
    day = f"date_bin(INTERVAL '1 day', hour, TIMESTAMPTZ '{DAY_ORIGIN}')"
    hour = "date_bin(INTERVAL '1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    return [
        f"CREATE OR REPLACE VIEW kpi_daily AS {_daily_select(day)}",
        f"CREATE OR REPLACE VIEW sensor_readings_hourly AS {_sensor_hourly_select(hour)}",
        "CREATE INDEX IF NOT EXISTS sensor_readings_ts ON sensor_readings (ts)",
    ]


# add_columnstore_policy and ALTER TABLE ... SET (timescaledb.enable_columnstore)
MIN_TIMESCALEDB = (2, 18)


class SchemaError(RuntimeError):
    """The database cannot hold this schema (and nothing was changed)."""


def timescale_release(version: str) -> tuple[int, ...]:
    """(2, 18, 1) from "2.18.1" (a suffix such as "-dev" is ignored)."""
    numbers = []
    for part in version.split("-")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def _enable_timescaledb(url: str) -> tuple[str | None, str]:
    """The TimescaleDB version enabled in the database, or None and why not.

    On a connection of its own: if the extension is installed but not preloaded,
    CREATE EXTENSION fails with a FATAL error that closes the connection."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(installed_version, default_version) FROM pg_available_extensions "
            "WHERE name = 'timescaledb'"
        ).fetchone()
        if row is None:
            return None, "the timescaledb extension is not installed on this server"
        version = str(row[0])
        # checked before CREATE EXTENSION, so a refusal changes nothing
        if timescale_release(version) < MIN_TIMESCALEDB:
            raise SchemaError(
                f"TimescaleDB {version} is older than "
                f"{'.'.join(map(str, MIN_TIMESCALEDB))}, whose columnstore API this schema "
                "uses: install a newer release (and ALTER EXTENSION timescaledb UPDATE)"
            )
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            hint = (exc.diag.message_hint or "").split("\n")[0]
            why = f"{exc.diag.message_primary or exc}. {hint}".strip(" .")
            return None, f"the timescaledb extension is installed but cannot be enabled: {why}"
    return version, ""


def _log_server_warning(diag: psycopg.errors.Diagnostic) -> None:
    # NOTICEs ("already exists, skipping") are routine; a WARNING is worth reading
    if diag.severity_nonlocalized == "WARNING":
        log.warning("the database server warned: %s", diag.message_primary)


def migrate(url: str) -> str:
    """Create or update the schema. Returns the mode used: the TimescaleDB
    version, or ``"postgresql"`` when the extension is not available."""
    version, why_not = _enable_timescaledb(url)
    mode = "postgresql" if version is None else f"timescaledb {version}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.add_notice_handler(_log_server_warning)
        with conn.transaction():
            for statement in tables():
                conn.execute(statement)
        # Continuous aggregates cannot be created inside a transaction block.
        if version is None:
            for statement in postgres_statements():
                conn.execute(statement)
        else:
            # Aggregates not yet under a whole-history policy (new ones, and those of
            # earlier releases, refreshed over their last days only) are refreshed now.
            covered = {
                r[0]
                for r in conn.execute(
                    "SELECT hypertable_name FROM timescaledb_information.jobs "
                    "WHERE proc_name = 'policy_refresh_continuous_aggregate' "
                    "AND hypertable_schema = current_schema() AND config->>'start_offset' IS NULL"
                )
            }
            stale = [view for view, *_ in AGGREGATES if view not in covered]
            for statement in timescale_statements(refresh=stale):
                conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_info (version, timescaledb) VALUES (%s, %s) "
            "ON CONFLICT (version) DO UPDATE SET timescaledb = EXCLUDED.timescaledb, "
            "applied_at = now()",
            (SCHEMA_VERSION, None if version is None else mode),
        )
    if version is None:
        log.warning(
            "TimescaleDB is not available: %s. Using plain PostgreSQL tables and date_bin "
            "views (no hypertables, compression, continuous aggregates or retention policies)",
            why_not,
        )
    else:
        log.info("%s: hypertables, columnstore, continuous aggregates and retention enabled", mode)
    return mode
