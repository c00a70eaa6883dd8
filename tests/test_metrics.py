"""`/metrics`, `/healthz` and `/readyz` on every service (real processes)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import eventually, outcome, read_sse, wait_for_job_type
from .processes import ServiceProcess, gateway_url, service_env, stop_all

pytestmark = pytest.mark.slow


async def test_every_service_reports_metrics_and_health(nats_server: EmbeddedNats, names: Names, tmp_path: Path,
                                                        js: JetStreamContext) -> None:
    env = service_env(nats_server.url, names, tmp_path, JOBLINE_PORT="0")
    processes = {s: await ServiceProcess.service(s, env) for s in ("logsink", "processor", "gateway")}
    try:
        ops = {s: (await processes[s].wait_for_line(r"metrics and health on (http://\S+)/metrics")).group(1)
               for s in ("logsink", "processor")}
        gateway = await gateway_url(processes["gateway"])
        await wait_for_job_type(js, names, "demo")
        async with httpx.AsyncClient(timeout=10) as client:
            job = (await client.post(f"{gateway}/api/jobs", json={"type": "demo", "params": {"step_seconds": 0.05,
                                                                                            "ticks_per_step": 2}})).json()
            assert outcome(await read_sse(client, f"{gateway}/api/jobs/{job['id']}/events")) == "completed"
            for base in (gateway, *ops.values()):
                assert (await client.get(f"{base}/healthz")).status_code == 200
                assert (await client.get(f"{base}/readyz")).status_code == 200
            text = (await client.get(f"{gateway}/metrics")).text
            assert 'jobline_jobs_submitted_total{type="demo"} 1.0' in text
            assert 'jobline_http_requests_total{method="POST",route="/api/jobs",status="202"} 1.0' in text
            assert "jobline_read_model_lag" in text and "jobline_open_streams" in text
            processor_metrics = (await client.get(f"{ops['processor']}/metrics")).text
            assert 'jobline_jobs_total{outcome="completed",type="demo"} 1.0' in processor_metrics

            async def rows_written() -> bool:
                text = (await client.get(f"{ops['logsink']}/metrics")).text
                line = next(x for x in text.splitlines() if x.startswith("jobline_log_rows_written_total "))
                return float(line.split()[1]) >= 6

            await eventually(rows_written, what="the logsink's rows counter")
            assert "jobline_logsink_lag" in (await client.get(f"{ops['logsink']}/metrics")).text
            assert (await client.get(f"{ops['processor']}/nope")).status_code == 404
    finally:
        await stop_all(list(processes.values()))
