"""The weekly clinic digest: beat asks hourly, ``send_weekly_digests`` decides per clinic
whether a week has passed since its last one."""

from __future__ import annotations

import datetime as dt

from service.db import transaction
from service.reporting.digest import send_weekly_digests
from tasks.app import app
from tasks.runtime import get_runtime


@app.task(name="ptnudge.weekly_digest", acks_late=True, ignore_result=True)
def weekly_digest() -> int:
    runtime = get_runtime(app)
    with transaction(runtime.sessions) as session:
        return send_weekly_digests(
            session=session,
            settings=runtime.settings,
            transport=runtime.email,
            now=dt.datetime.now(dt.UTC),
        )
