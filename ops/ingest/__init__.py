"""Ingestion: validating raw events and transactions and turning events into sessions.

Row checks and quarantine, timestamp parsing, and the sessionizer that encodes page
events as token sequences with their dwell times.
"""

from ops.constants import FIRST_TOKEN, OOV, PAD
from ops.ingest._event_pieces import TOKEN_DTYPES, CheckedEvents, EventsProfile, check_event_piece
from ops.ingest._sessionize import (
    SEQUENCE_SCHEMA,
    build_vocabulary,
    sessionize_events,
    sessionize_partition,
)
from ops.ingest._timestamps import to_epoch_ms
from ops.ingest._validation import (
    NO_EVENTS,
    QUARANTINE_COLUMNS,
    first_failure,
    quarantine_rows,
    transaction_checks,
)

__all__ = [
    "FIRST_TOKEN",
    "NO_EVENTS",
    "OOV",
    "PAD",
    "QUARANTINE_COLUMNS",
    "SEQUENCE_SCHEMA",
    "TOKEN_DTYPES",
    "CheckedEvents",
    "EventsProfile",
    "build_vocabulary",
    "check_event_piece",
    "first_failure",
    "quarantine_rows",
    "sessionize_events",
    "sessionize_partition",
    "to_epoch_ms",
    "transaction_checks",
]
