"""schemathesis against /api/v1/openapi.json, as a developer and as a reviewer: generated
requests (valid and invalid) never get a 5xx, and every response matches the documented status
codes, content types and schemas. The number of examples is bounded to keep CI fast."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from reviewapp.auth.services import issue_token
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

EXAMPLES = 8  # per operation; bounded to keep the suite fast
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture()
def api_schema(app, monkeypatch):  # noqa: ANN001, ANN201
    # hundreds of generated requests in a few seconds: lift the per-token and per-address
    # limits for this test (tests/functional/test_rate_limits.py covers the limits)
    monkeypatch.setitem(app.config, "RATELIMIT_API", "100000 per minute")
    monkeypatch.setitem(app.config, "RATELIMIT_API_IP", "100000 per minute")
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.fixture()
def tokens(db):  # noqa: ANN001, ANN201
    developer = UserFactory()
    ApplicationFactory(submitter=developer)  # a draft
    ApplicationFactory(submitted=True, submitter=developer)
    ApplicationFactory(submitted=True)
    reviewer = UserFactory(senior=True, organization=OrganizationFactory())
    return [
        {"Authorization": f"Bearer {issue_token(db, developer, scopes='read write')}"},
        {"Authorization": f"Bearer {issue_token(db, reviewer, scopes='read write review')}"},
    ]


def test_api_matches_its_openapi_document(api_schema, tokens) -> None:  # noqa: ANN001
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case) -> None:  # noqa: ANN001
            for headers in tokens:
                case.call_and_validate(headers=headers, checks=CHECKS)

        exercise()
