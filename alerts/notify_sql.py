"""The notifier's statements on the outbox, each its own short transaction.

``CLAIM`` takes due rows no other notifier is claiming (``SKIP LOCKED``) and
sets their lease (``next_attempt_at`` pushed forward) in one statement.
``START_MANY`` begins attempts only where the lease is still the one this
process set (compare-and-set), and renews it for the send. ``FINISH_MANY``
stores attempts and the rows' new states together. The ``_MANY``
statements take arrays, so one round trip serves a whole batch; the
notifier's connections are in autocommit, so each statement is its own
transaction and costs one round trip.
"""

CLAIM = """
UPDATE alert_deliveries d SET next_attempt_at = now() + make_interval(secs => %(lease)s)
FROM (SELECT key FROM alert_deliveries
      WHERE state IN ('pending', 'failed') AND channel = ANY(%(channels)s)
        AND (next_attempt_at IS NULL OR next_attempt_at <= now())
        AND NOT (channel = 'webhook' AND lower(address) LIKE ANY(%(blocked)s))
      ORDER BY coalesce(next_attempt_at, decided_at)
      LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due
WHERE d.key = due.key
RETURNING d.key, d.channel, d.address, d.payload, extract(epoch FROM d.decided_at),
          d.attempts, d.next_attempt_at
"""
# Start attempts, many rows at once: each only while our lease holds; counts
# the attempt and renews the lease for the send.
START_MANY = """
UPDATE alert_deliveries d SET attempts = d.attempts + 1,
       next_attempt_at = now() + make_interval(secs => %(lease)s)
FROM unnest(%(keys)s::text[], %(leases)s::timestamptz[]) AS s(key, lease_at)
WHERE d.key = s.key AND d.next_attempt_at = s.lease_at AND d.state IN ('pending', 'failed')
RETURNING d.key, d.attempts
"""
# Outcomes, many at once, in one statement (so one round trip and one
# commit): each attempt's row, and the delivery's new state, which changes
# only if no later attempt was started.
FINISH_MANY = """
WITH f AS (
    SELECT * FROM unnest(%(keys)s::text[], %(attempts)s::int[], %(oks)s::bool[],
                         %(statuses)s::int[], %(errors)s::text[], %(states)s::text[],
                         %(delays)s::float8[]) AS f(key, attempt, ok, status, error, state, delay)
), recorded AS (
    INSERT INTO alert_delivery_attempts (key, attempt, at, ok, status, error)
    SELECT key, attempt, now(), ok, status, error FROM f
    ON CONFLICT DO NOTHING
)
UPDATE alert_deliveries d SET state = f.state, last_error = f.error,
       sent_at = CASE WHEN f.state = 'sent' THEN now() END,
       next_attempt_at = CASE WHEN f.state = 'failed'
                              THEN now() + make_interval(secs => f.delay) END
FROM f
WHERE d.key = f.key AND d.attempts = f.attempt
"""
# Hand a claimed row back unsent (circuit open, queue full): only if still ours.
POSTPONE = """
UPDATE alert_deliveries SET next_attempt_at = now() + make_interval(secs => %(delay)s)
WHERE key = %(key)s AND next_attempt_at = %(lease_at)s
"""
