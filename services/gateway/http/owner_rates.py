"""An owner's submit rate, across every gateway.

A token made for an owner (each user of an app) submits at most `JOBLINE_SUBMIT_RATE` jobs a second,
in bursts of ten seconds' worth, whichever gateways its requests reach: each job it submits is first
one message on `submits.<owner hashed>` in the SUBMITS stream, which keeps an owner's messages for
the window and at most a burst of them (`max_msgs_per_subject`), refusing more with "maximum messages
per subject exceeded" (`discard_new_per_subject`). The broker counts, so N gateways do not allow N
times the rate. In memory: the count is only worth the window. Other clients (an API token, an
address) keep each gateway's own token bucket (auth.py): a backend's own key is not a tenant.
"""

from __future__ import annotations

import logging
import time

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from jobline.contract.names import Names
from jobline.runtime.publishing import publish_acked

log = logging.getLogger(__name__)
WINDOW_S = 10.0  # an owner's burst: this many seconds' worth of its rate
MAX_SUBJECT_MSGS_ERR = 10077  # JetStream: "maximum messages per subject exceeded"


def burst_of(rate: float) -> int:
    return int(max(rate * WINDOW_S, 1.0))


def stream_config(names: Names, rate: float, replicas: int) -> StreamConfig:
    return StreamConfig(
        name=names.submits_stream, subjects=[names.all_submits], storage=StorageType.MEMORY,
        discard=DiscardPolicy.NEW, discard_new_per_subject=True, max_msgs_per_subject=burst_of(rate),
        max_age=WINDOW_S, num_replicas=replicas, allow_direct=True,
        description="owners' recent submissions: their submit rate across gateways (one message per job)")


class OwnerRates:
    def __init__(self, js: JetStreamContext, names: Names):
        self._js = js
        self._names = names

    async def take(self, owner: str) -> float:
        """0 when the owner may submit one job now (it is counted); else the seconds until it may."""
        subject = self._names.owner_submits(owner)
        try:
            await publish_acked(self._js, subject, str(time.time()).encode(), {}, timeout=2.0)
        except APIError as exc:
            if exc.err_code != MAX_SUBJECT_MSGS_ERR:
                raise
            return await self._until_free(subject)
        except NatsTimeout:  # (the broker is slow or away: the submission itself will say so)
            log.warning("the submit rate of an owner could not be counted (timeout); letting the submission through")
        return 0.0

    async def _until_free(self, subject: str) -> float:
        """When the owner's oldest counted submission leaves the window."""
        try:
            oldest = await self._js.get_msg(self._names.submits_stream, seq=1, subject=subject, next=True, direct=True)
            return max(WINDOW_S - (time.time() - float(oldest.data or b"0")), 0.1)
        except (NotFoundError, ValueError):
            return 1.0
