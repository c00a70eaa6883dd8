"""HTTP routes of failure alert rules: thin handlers over jobs/alerts.py (the conductors evaluate them)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from jobline.contract.alerts import AlertRecord, AlertRule
from jobline.jobs.alerts import AlertRules
from jobline.jobs.errors import Malformed

_strict_rule = msgspec.json.Decoder(AlertRule)


@get("/api/alerts", summary="Every failure alert rule, and whether it fires now", errors=(503,))
async def list_alerts(alerts: NamedDependency[AlertRules]) -> list[AlertRecord]:
    return await alerts.all()


@get("/api/alerts/{name:str}", summary="A failure alert rule and what it last found", errors=(404, 503))
async def get_alert(alerts: NamedDependency[AlertRules], name: FromPath[str]) -> AlertRecord:
    return await alerts.require(name)


@put("/api/alerts/{name:str}", summary="Create or replace a failure alert rule", errors=(400, 422, 503),
     description="`{\"type\": \"video-transcode\", \"min_failures\": 5, \"window_s\": 600, \"min_rate\": 0.2, "
     "\"webhook_url\": \"https://…\"}`: it fires while at least `min_failures` jobs of the type (every type without "
     "`type`) failed or expired within the last `window_s` seconds and, with `min_rate`, they are at least that "
     "share of the jobs that ended then. Evaluated by the conductors every JOBLINE_ALERT_CHECK_S (15 s). While it "
     "fires the dashboard shows a banner; its webhook (Standard Webhooks, signed like job webhooks) gets one "
     "`alert.firing`, a reminder per window while it lasts and one `alert.resolved`. Replacing a rule starts its "
     "count over.")
async def put_alert(request: Request[Any, Any, Any], alerts: NamedDependency[AlertRules], name: FromPath[str],
                    data: JSONBody[AlertRule]) -> AlertRecord:  # (`data`: the documented body)
    try:  # strictly, as documented: Litestar's own decoding would take `"min_failures": "5"` for 5
        rule = _strict_rule.decode(await request.body())
    except msgspec.ValidationError as exc:
        raise Malformed(str(exc), title="Bad Request") from None
    return await alerts.put(name, rule)


@delete("/api/alerts/{name:str}", status_code=204, summary="Delete a failure alert rule", errors=(404, 503))
async def delete_alert(alerts: NamedDependency[AlertRules], name: FromPath[str]) -> None:
    await alerts.delete(name)


alert_handlers = [list_alerts, get_alert, put_alert, delete_alert]
