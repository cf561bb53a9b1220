"""What PostgreSQL can store, and which failed writes a retry can cure.

Everything written to the database from outside input passes through here
or through the decoder's canonical form (``ioc.events.canonical_body``), so
that no record can make a write fail for good. As a last line, a write that
fails anyway is told apart: a lost connection, a server restart or a full
disk is retried until it succeeds; a refusal of the data itself (a value
out of range, a constraint) is not, because the same rows would be refused
forever and block every later commit. Those rows are written one by one and
the refused ones go to the dead letters.
"""

from __future__ import annotations

import psycopg

# SQLSTATE classes of refusals that depend on the rows, not on the server's
# condition: 22 data exception, 23 integrity constraint violation, 54 program
# limit exceeded (e.g. an index row too large).
DATA_ERROR_CLASSES = frozenset(("22", "23", "54"))


def storable_text(value: str) -> str:
    """``value`` as PostgreSQL ``text`` accepts it: NUL written as ``\\x00``
    and lone surrogates (which cannot be UTF-8) as ``\\udXXX`` escapes."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def header_text(value: bytes | None, default: str = "") -> str:
    """A Kafka header (any bytes, from any producer) as storable text."""
    if value is None:
        return default
    return storable_text(value.decode("utf-8", "backslashreplace"))


def is_data_error(exc: BaseException) -> bool:
    """True when retrying the same write cannot succeed: the rows are refused.

    Anything else (connection lost, server shutting down, out of resources,
    a serialization failure) may pass on the next try and is retried. A bug in
    our own SQL is not a data error either: it stalls the writer loudly (logs,
    metrics, ``/readyz``) rather than sending good rows to the dead letters.
    """
    if isinstance(exc, UnicodeEncodeError):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state:
        return state[:2] in DATA_ERROR_CLASSES
    # refused by psycopg before it reached the server (e.g. NUL in text)
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)
