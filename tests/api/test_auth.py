"""Access: the token as basic-auth user name; 401 JSON otherwise; serve refuses to start without it."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.api.support import ROOT, TOKEN, Server, basic, profile_path

TRAITS = profile_path("profile_id:nobody", "traits")


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,  # no header
        basic("wrong-token"),
        basic(TOKEN[:-1]),  # a prefix of the token
        basic(TOKEN + "x"),  # the token plus one character
        basic("", TOKEN),  # the token as password, empty user name
        "Bearer " + TOKEN,  # another scheme
        "Basic !!!not-base64!!!",
        "Basic " + "dG9rZW4=",  # base64 without a colon
    ],
)
def test_requests_without_the_token_get_401(server: Server, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(server.url + TRAITS, headers=headers)
    error = _error(response, 401)
    assert error["code"] == "authentication_error"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_the_token_with_any_password_is_admitted(server: Server) -> None:
    # Admitted means past auth: the profile does not exist, hence 404 (not 401).
    for password in ("", "ignored"):
        response = httpx.get(server.url + TRAITS, headers={"Authorization": basic(TOKEN, password)})
        assert _error(response, 404)["code"] == "not_found"


def test_every_data_route_needs_the_token(server: Server) -> None:
    openapi = httpx.get(server.url + "/openapi.json").json()
    paths = [p for p in openapi["paths"] if p.startswith("/v1/")]
    assert len(paths) == 7
    for path in paths:
        url = (path.replace("{space}", "demo").replace("{collection}", "users")
               .replace("{external_id}", "user_id:x").replace("{key}", "big_spenders"))  # fmt: skip
        assert httpx.get(server.url + url, params={"audience": "big_spenders"}).status_code == 401
    assert openapi["components"]["securitySchemes"]["HTTPBasic"]["scheme"] == "basic"


def test_health_and_openapi_need_no_token(server: Server) -> None:
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert httpx.get(server.url + "/openapi.json").status_code == 200


@pytest.mark.parametrize("token", [None, "", "with:colon", "caf\u00e9"])
def test_serve_refuses_to_start_without_a_usable_token(token: str | None, warehouse) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AUDIENCE_PIPELINE_API_TOKEN"}
    if token is not None:
        env["AUDIENCE_PIPELINE_API_TOKEN"] = token
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "audience_pipeline.cli", "serve", "--warehouse", str(warehouse),
         "--port", "1"],  # fmt: skip
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "AUDIENCE_PIPELINE_API_TOKEN" in done.stderr
