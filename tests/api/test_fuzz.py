"""Schemathesis from the served OpenAPI document: no 5xx, responses as documented.

Examples with real ids are added to the document (in the test only), so that generated requests
reach existing profiles and audiences as well as random ones. Bounded: a few dozen examples per
operation.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.support import TOKEN, Expected, Server, basic

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


def _with_examples(raw: dict[str, Any], expected: Expected) -> dict[str, Any]:
    profile = expected.users["profile_id"][0]
    account = expected.accounts["account_id"][0]
    audiences = sorted(expected.audiences["user"] | expected.audiences["account"])
    examples = {
        "space": ["demo"],
        "external_id": [
            expected.external_id(profile),
            f"profile_id:{profile}",
            f"group_id:{account}",
        ],  # fmt: skip
        "key": audiences[:3],
        "audience": audiences[:3],
    }
    for operations in raw["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in examples:
                    parameter["examples"] = {
                        f"e{i}": {"value": v} for i, v in enumerate(examples[parameter["name"]])
                    }
    return raw


@pytest.fixture(scope="module")
def api_schema(server: Server, expected: Expected) -> Any:
    raw = httpx.get(server.url + "/openapi.json").json()
    return schemathesis.openapi.from_dict(_with_examples(raw, expected))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_documented_responses(case: Any, server: Server) -> None:
    case.call_and_validate(
        base_url=server.url, headers={"Authorization": basic(TOKEN)}, checks=CHECKS
    )
