"""The conductor service: `run(settings, stop)` runs the flow runner, the schedule runner, the signal
runner, the webhook dispatcher and the failure alerts until `stop` is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from jobline.contract.flows import FlowRecord, flows_bucket_config
from jobline.contract.operations import operations_bucket_config
from jobline.contract.queues import queue_controls_bucket_config
from jobline.jobs.alerts import AlertRules
from jobline.jobs.bands import Bands
from jobline.jobs.catalogue import Catalogue
from jobline.jobs.checks import JobChecks
from jobline.jobs.history_client import HistoryClient
from jobline.jobs.idempotency import open_bucket as open_idempotency
from jobline.jobs.reader import JobReader, NoLiveJobs
from jobline.jobs.schedules import ScheduleStore
from jobline.jobs.writer import JobWriter
from jobline.runtime import tracing
from jobline.runtime.buckets import key_value
from jobline.runtime.connection import close_connection, connect, instance_name
from jobline.runtime.kv_records import KvRecords
from jobline.runtime.lifecycle import Stopped, until_stopped
from jobline.runtime.log_shipping import ship_logs
from jobline.runtime.ops_http import serve_ops
from jobline.runtime.stream_setup import ensure_streams

from .alert_watch import AlertWatch
from .flow_runner import FlowRunner
from .metrics import ConductorMetrics
from .operation_runner import OperationRunner
from .schedule_runner import ScheduleRunner
from .settings import ConductorSettings
from .signal_runner import SignalRunner
from .webhooks import WebhookDispatcher

log = logging.getLogger(__name__)
SERVICE = "conductor"


async def run(settings: ConductorSettings, stop: asyncio.Event) -> None:
    instance = instance_name(SERVICE)
    names, replicas = settings.names, settings.retention.replicas
    try:
        async with contextlib.AsyncExitStack() as stack:
            nc = await until_stopped(stop, connect(settings.nats_servers, instance, settings.nats_credentials))
            stack.push_async_callback(close_connection, nc)
            js = nc.jetstream()
            await until_stopped(stop, ensure_streams(js, names, settings.retention))
            await stack.enter_async_context(ship_logs(nc, names, SERVICE, instance))
            catalogue = Catalogue()
            stack.push_async_callback(catalogue.stop)
            await until_stopped(stop, catalogue.start(js, names, replicas))
            history = HistoryClient(nc, names, settings.history_timeout_s)
            reader = JobReader(js, names, history, NoLiveJobs())
            writer = JobWriter(nc, js, names, JobChecks(catalogue, settings.job_limits),
                               await until_stopped(stop, open_idempotency(js, names, settings.idempotency_ttl_s, replicas)),
                               Bands(js, names, await key_value(js, queue_controls_bucket_config(names, replicas))),
                               reader, tracer=tracing.tracer(SERVICE))
            metrics = ConductorMetrics()
            flows = FlowRunner(writer, KvRecords(await key_value(js, flows_bucket_config(names, replicas)), FlowRecord),
                               on_message=metrics.flow_messages.inc)
            stack.push_async_callback(flows.stop)
            await until_stopped(stop, flows.start())
            schedules = ScheduleRunner(writer, await until_stopped(stop, ScheduleStore.open(
                js, names, replicas, settings.schedule_catchup_s)), on_job=metrics.schedule_jobs.inc)
            stack.push_async_callback(schedules.stop)
            await until_stopped(stop, schedules.start())
            signals = SignalRunner(nc, js, names, on_resumed=metrics.signal_resumes.inc)
            stack.push_async_callback(signals.stop)
            await until_stopped(stop, signals.start())
            webhooks = WebhookDispatcher(nc, js, names, settings.webhooks,
                                         on_attempt=lambda ok: metrics.webhook_attempts.labels(str(ok).lower()).inc())
            stack.push_async_callback(webhooks.stop)
            await until_stopped(stop, webhooks.start())
            operations = OperationRunner(nc, js, names, writer, history, await key_value(
                js, operations_bucket_config(names, replicas, settings.retention.jobs_max_age_s)))
            stack.push_async_callback(operations.stop)
            await until_stopped(stop, operations.start())
            alerts = AlertWatch(await until_stopped(stop, AlertRules.open(js, names, replicas)), history,
                                settings.webhooks, max(settings.alert_check_s, 0.1))
            stack.push_async_callback(alerts.stop)
            alerts.start()
            await stack.enter_async_context(serve_ops(settings.ops_host, settings.ops_port, metrics.registry,
                                                      ready=lambda: nc.is_connected and not stop.is_set()))
            log.info("conductor running flows, schedules, signals, webhooks, bulk operations and failure alerts")
            await stop.wait()
    except Stopped:
        log.info("told to stop while starting")
