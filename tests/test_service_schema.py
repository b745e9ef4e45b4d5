"""Property-based run against the app's own /openapi.json (schemathesis on the app object, offline): for every
operation, cases generated from the schema (valid ones and deliberately invalid ones) never get a 5xx, and valid
JSON answers conform to the documented response schema."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.service_fixtures import ADMIN, hashing_registry, make_settings, service_predictor  # noqa: F401

import schemathesis  # noqa: E402  (a test dependency: a missing one must fail, not skip)
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi import checks as openapi_checks  # noqa: E402

EXAMPLES = 8


@pytest.fixture(scope="module")
def operations(tmp_path_factory, hashing_registry, service_predictor):
    from service.app import create_app

    tmp = tmp_path_factory.mktemp("schema")
    # small limits so that the limits themselves are exercised
    app = create_app(make_settings(tmp, hashing_registry, max_description_chars=2000, max_batch_items=4,
                                   max_body_bytes=20_000), service_predictor)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = {}
    for result in schema.get_all_operations():
        op = result.ok()
        ops[f"{op.method.upper()} {op.path}"] = op
    return ops


OPERATIONS = ["GET /health", "GET /ready", "POST /v1/predict", "POST /v1/predict/batch", "POST /v1/extract",
              "POST /v1/feedback", "GET /v1/feedback", "GET /v1/model", "GET /v1/taxonomy", "GET /v1/laarit",
              "GET /v1/laarit/map", "GET /v1/laarit/{laari_id}", "POST /v1/admin/reload"]


def test_every_operation_is_covered(operations):
    assert sorted(operations) == sorted(OPERATIONS)


WITH_INPUT = [op for op in OPERATIONS if op.startswith("POST") or op in ("GET /v1/feedback", "GET /v1/laarit/{laari_id}")]
CASES = [(op, GenerationMode.POSITIVE) for op in OPERATIONS] + [(op, GenerationMode.NEGATIVE) for op in WITH_INPUT]


@pytest.mark.parametrize("label, mode", CASES, ids=[f"{op} {m.value}" for op, m in CASES])
def test_no_server_errors(operations, label, mode):
    op = operations[label]
    # a hard reference: if schemathesis renames the check, this fails instead of silently checking nothing
    conformance = openapi_checks.response_schema_conformance

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        case.headers = {**(case.headers or {}), **ADMIN}
        response = case.call()
        assert response.status_code < 500, (f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                            f"{response.text[:500]}")
        kind = response.headers.get("content-type", "")
        kind = kind[0] if isinstance(kind, list) else kind
        if mode is GenerationMode.POSITIVE and response.status_code in (200, 201) and "json" in kind:
            case.validate_response(response, checks=[conformance])

    check()
