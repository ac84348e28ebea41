"""Schemathesis over the app's own OpenAPI: no input makes it fail with a 5xx.

Twice: as generated (unsigned, so the Twilio routes answer 403 before reading further), and
with every Twilio request correctly signed, so arbitrary senders, bodies and MessageSids go
all the way through the reply parser and its effects on a real database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from twilio.request_validator import RequestValidator

from service.web import app as module_app
from service.web.factory import create_app
from tests.conftest import Database
from tests.web.conftest import serve
from tests.web.test_web import PUBLIC_URL, TOKEN, web_settings

EXAMPLES = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# The document does not depend on settings: the module-level app describes every route.
schema = schemathesis.openapi.from_dict(module_app.openapi())


@pytest.fixture
def base_url(committed_db: Database, tmp_path: Path) -> Iterator[str]:
    app = create_app(web_settings(committed_db, tmp_path), enqueue_alert=lambda _: None)
    with serve(app) as url:
        yield url


@schema.parametrize()
@EXAMPLES
def test_no_input_causes_a_server_error(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=[not_a_server_error])


@schema.include(path_regex="^/twilio/").parametrize()
@EXAMPLES
def test_signed_twilio_requests_never_cause_a_server_error(case: Any, base_url: str) -> None:
    body = case.body if isinstance(case.body, dict) else {}
    params = {name: value for name, value in body.items() if isinstance(value, str)}
    url = PUBLIC_URL + case.formatted_path
    if case.query:
        url += "?" + urlencode(case.query, doseq=True)  # as the client will encode it
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    case.call_and_validate(
        base_url=base_url,
        headers={"X-Twilio-Signature": signature},
        checks=[not_a_server_error],
    )
