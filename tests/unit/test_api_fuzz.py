"""The API fuzzed from its own OpenAPI document (schemathesis): whatever the generated requests,
signed in or not, no answer is a server error, and every answer is one the document describes
(its status, content type and body schema). Bounded: a few dozen examples per operation."""
import atexit
import shutil
import tempfile
from datetime import datetime
from decimal import Decimal as D

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from billing import services
from billing.clock import FixedClock
from billing.core import Core
from selfcare.http import create_app
from tests.unit.api_support import SETTINGS, Api
from tests.unit.cards_support import add_card

PREPAID, POSTPAID = "+994501234567", "+994551234567"
EXAMPLES = 30


# The document does not depend on the data, so the app is made when the module loads (its database
# is created by the fixture): schemathesis's lazy fixture loader does not run on pytest 9.
_FOLDER = tempfile.mkdtemp(prefix="selfcare-fuzz-")
atexit.register(shutil.rmtree, _FOLDER, True)  # also when the fixture never runs (deselected)
CORE = Core(f"sqlite:///{_FOLDER}/billing.db", clock=FixedClock(datetime(2026, 11, 22, 12, 0)))
APP = create_app(CORE, SETTINGS)
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP)


@pytest.fixture(scope="module")
def fuzzed():
    CORE.upgrade_schema()
    with CORE.uow() as uow:
        services.add_subscriber(uow, PREPAID, "prepaid", balance=D("50.00"))
    with CORE.uow() as uow:
        services.add_subscriber(uow, POSTPAID, "postpaid", bill_day=10, billed=D("3.10"))
    add_card(CORE, value="5.00")
    api = Api(CORE, client=APP.test_client())
    tokens = {"prepaid": api.signed_in(PREPAID).token, "postpaid": api.signed_in(POSTPAID).token}
    yield APP, tokens
    CORE.dispose()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(case, fuzzed):
    _, tokens = fuzzed
    headers = {}
    if case.path != "/api/v1/signout":  # signing out would end the token the other cases use
        line = "postpaid" if "grants" in case.path else "prepaid"
        headers["Authorization"] = f"Bearer {tokens[line]}"
    case.call_and_validate(headers=headers, checks=[not_a_server_error, status_code_conformance,
                                                    content_type_conformance, response_schema_conformance])


def test_the_document_describes_every_operation_and_the_bearer_scheme(fuzzed):
    app, _ = fuzzed
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    operations = sorted(f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item)
    assert operations == [
        "DELETE /api/v1/grants/{grantee}", "GET /api/v1/balance", "GET /api/v1/credit", "GET /api/v1/grants",
        "GET /api/v1/history", "GET /api/v1/packs", "GET /api/v1/settings", "GET /api/v1/shared/{owner}",
        "GET /api/v1/tariff", "PATCH /api/v1/settings", "POST /api/v1/credit", "POST /api/v1/grants",
        "POST /api/v1/packs", "POST /api/v1/packs/deactivate", "POST /api/v1/packs/stop-renewal",
        "POST /api/v1/signin/code", "POST /api/v1/signin/verify", "POST /api/v1/signout",
        "POST /api/v1/topup/card"]
    assert document["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert document["paths"]["/api/v1/balance"]["get"]["security"] == [{"bearer": []}]
