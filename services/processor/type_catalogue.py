"""Advertise the job types this processor serves in the types KV bucket (the gateway reads it)."""

from __future__ import annotations

import logging
import uuid

import msgspec
from nats.js import JetStreamContext

from jobline.contract.events import encoder
from jobline.contract.names import Names
from jobline.contract.streams import types_bucket_config
from jobline.runtime.buckets import key_value
from jobline.runtime.publishing import publish_reliably

from .registry import Registry

log = logging.getLogger(__name__)


async def advertise(js: JetStreamContext, names: Names, registry: Registry, served: list[str], replicas: int,
                    default_timeout_s: float | None = None) -> None:
    await key_value(js, types_bucket_config(names, replicas))
    for name in served:
        spec = registry.get(name)
        assert spec is not None
        # A KV put is a publish to `$KV.<bucket>.<key>`; published with retries because a bucket
        # just created on a cluster may still be electing its leader ("no responders").
        info = msgspec.structs.replace(spec.info(), timeout_s=spec.timeout_s or default_timeout_s)
        await publish_reliably(js, f"$KV.{names.types_bucket}.{name}", encoder.encode(info),
                               msg_id=f"type:{name}:{uuid.uuid4().hex}")
    log.info("advertised job types: %s", ", ".join(served))
