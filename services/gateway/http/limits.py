"""Every limit of the HTTP API in one place (docs/api.md, "Limits", lists the same).

Limits that come from configuration (JOBLINE_MAX_TIMEOUT_S, JOBLINE_MAX_UPLOAD_BYTES, …) are in
settings.py; these are the fixed ones. Two more are the contract's, since other services hold to
them too: MAX_FLOW_JOBS (contract/flows.py) and MAX_PAGE of a history search (contract/history.py);
a job's own bounds are the domain's (jobs/checks.py), named here again.
"""

from __future__ import annotations

import re
from typing import Final

from jobline.jobs import checks

# A job (alone, in a batch, a flow, a schedule's template, a spawned child): the domain's own
# bounds (jobs/checks.py), listed here with the rest.
MAX_JOB_BYTES: Final = checks.MAX_JOB_BYTES  # 256 KiB of JSON: params and options
MAX_CONCURRENCY_KEY: Final = checks.MAX_CONCURRENCY_KEY  # characters
MAX_WEBHOOK_URL: Final = checks.MAX_WEBHOOK_URL  # characters
MAX_IDEMPOTENCY_KEY: Final = checks.MAX_IDEMPOTENCY_KEY  # characters

# Batches: up to 10,000 jobs in one atomic write (two messages each for a delayed job).
MAX_BATCH_JOBS: Final = 10_000
MAX_BATCH_BYTES: Final = 32 << 20  # 10,000 jobs of ~3 KB each

# Flows: a tree of at most MAX_FLOW_JOBS jobs (contract/flows.py), at most MAX_FLOW_DEPTH levels below
# its root (a deeper tree is refused: its GET and its page must be able to show it).
MAX_FLOW_DEPTH: Final = 32
MAX_FLOW_BYTES: Final = 8 << 20

# Forms: all text fields together (the JSON path's body limit), and parts.
MAX_FORM_FIELD_BYTES: Final = MAX_JOB_BYTES
MAX_FORM_PARTS: Final = 64

# Streams and reads.
MAX_WATCHED_JOBS: Final = 50  # jobs followed on one /api/events stream or WebSocket subscription
MAX_WS_SUBSCRIPTIONS: Final = 20  # per WebSocket (each counts as a stream against the per-client cap)
MAX_LOG_PAGE: Final = 5000  # log lines per page
MAX_SEQ: Final = (1 << 63) - 1  # the largest stream sequence (and SQLite integer) there can be
MAX_UNIX_TIME: Final = 253402300799.0  # 9999-12-31T23:59:59Z: the latest time a filter may name

# Text a path or a filter may not hold (`%00` would reach the file system as a NUL).
CONTROL_CHARACTER: Final = re.compile(r"[\x00-\x1f\x7f]")

# A stream token's life when asked for (`expires_in`): at most a day (5 minutes when not asked for).
MAX_TOKEN_TTL_S: Final = 86_400
