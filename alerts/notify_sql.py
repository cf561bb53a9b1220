"""The notifier's statements on the outbox, each its own short transaction.

``CLAIM`` takes due rows no other notifier is claiming (``SKIP LOCKED``) and
sets their lease (``next_attempt_at`` pushed forward) in one statement.
``START`` begins an attempt only while the lease is still the one this
process set (compare-and-set), and renews it for the send. ``RECORD`` and
``FINISH`` store the attempt and the row's new state together.
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
# Start an attempt: only while our lease holds; counts the attempt.
START = """
UPDATE alert_deliveries SET attempts = attempts + 1,
       next_attempt_at = now() + make_interval(secs => %(lease)s)
WHERE key = %(key)s AND next_attempt_at = %(lease_at)s AND state IN ('pending', 'failed')
RETURNING attempts
"""
FINISH = """
UPDATE alert_deliveries SET state = %(state)s, last_error = %(error)s,
       sent_at = CASE WHEN %(state)s = 'sent' THEN now() END,
       next_attempt_at = CASE WHEN %(state)s = 'failed'
                              THEN now() + make_interval(secs => %(delay)s) END
WHERE key = %(key)s AND attempts = %(attempt)s
"""
RECORD = """
INSERT INTO alert_delivery_attempts (key, attempt, at, ok, status, error)
VALUES (%(key)s, %(attempt)s, now(), %(ok)s, %(status)s, %(error)s)
ON CONFLICT DO NOTHING
"""
# Hand a claimed row back unsent (circuit open, queue full): only if still ours.
POSTPONE = """
UPDATE alert_deliveries SET next_attempt_at = now() + make_interval(secs => %(delay)s)
WHERE key = %(key)s AND next_attempt_at = %(lease_at)s
"""
