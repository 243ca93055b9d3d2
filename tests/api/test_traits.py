"""GET .../traits: every trait exactly once across pages, values as in the warehouse tables."""

from __future__ import annotations

import random

import httpx
import polars as pl
import pytest

from tests.api.support import Expected, Server, pages, profile_path


@pytest.fixture(scope="module")
def client(server: Server) -> httpx.Client:
    return server.client()


def _sample(expected: Expected, n: int = 25) -> list[str]:
    profiles = expected.users["profile_id"].to_list()
    return random.Random(7).sample(profiles, n)


@pytest.mark.parametrize("limit", [1, 3, 7, 200])
def test_pagination_returns_every_trait_exactly_once(
    client: httpx.Client, expected: Expected, limit: int
) -> None:
    for profile in _sample(expected, 8):
        items = pages(client, profile_path(expected.external_id(profile), "traits"),
                      {"limit": limit}, "traits")  # fmt: skip
        names = [name for name, _ in items]
        assert len(names) == len(set(names)), "a trait came twice"
        assert names == sorted(names)
        assert dict(items) == expected.traits("user", profile)


def test_traits_match_the_tables_for_users_and_accounts(
    client: httpx.Client, expected: Expected
) -> None:
    for profile in _sample(expected):
        body = client.get(profile_path(f"profile_id:{profile}", "traits"),
                          params={"limit": 200}).json()  # fmt: skip
        assert body["traits"] == expected.traits("user", profile)
        assert body["cursor"]["has_more"] is False and body["cursor"]["next"] == ""
    for account in expected.accounts["account_id"].to_list():
        path = profile_path(f"group_id:{account}", "traits", "accounts")
        assert client.get(path, params={"limit": 200}).json()["traits"] == expected.traits(
            "account", account
        )


def test_audiences_are_boolean_traits_matching_memberships(
    client: httpx.Client, expected: Expected
) -> None:
    for profile in expected.users["profile_id"].to_list():
        items = dict(pages(client, profile_path(f"profile_id:{profile}", "traits"),
                           {"class": "audience", "limit": 50}, "traits"))  # fmt: skip
        assert set(items) == expected.audiences["user"]
        assert items == {k: (k, profile) in expected.members for k in items}
    for account in expected.accounts["account_id"].to_list():
        path = profile_path(f"group_id:{account}", "traits", "accounts")
        items = client.get(path, params={"class": "audience", "limit": 200}).json()["traits"]
        assert items == {k: (k, account) in expected.members for k in expected.audiences["account"]}


def test_class_and_include_filter(client: httpx.Client, expected: Expected) -> None:
    profile = _sample(expected, 1)[0]
    path = profile_path(f"profile_id:{profile}", "traits")
    computed = client.get(path, params={"class": "computed_trait", "limit": 200}).json()["traits"]
    assert set(computed) == expected.computed["user"]
    wanted = ["total_revenue_90d", "known_users", "no_such_trait"]
    body = client.get(path, params={"include": ",".join(wanted)}).json()
    full = expected.traits("user", profile)
    assert body["traits"] == {k: full[k] for k in wanted if k in full}


def test_verbose_wraps_values_with_their_class(client: httpx.Client, expected: Expected) -> None:
    profile = _sample(expected, 1)[0]
    body = client.get(profile_path(f"profile_id:{profile}", "traits"),
                      params={"verbose": "true", "limit": 200}).json()  # fmt: skip
    full = expected.traits("user", profile)
    assert {k: v["value"] for k, v in body["traits"].items()} == full
    kinds = {v["class"] for v in body["traits"].values()}
    assert kinds <= {"custom_trait", "computed_trait", "audience"} and "audience" in kinds


def test_lookup_by_each_identifier_type(client: httpx.Client, expected: Expected) -> None:
    ids = expected.identities.filter(pl.col("id_type") == "email").head(5)
    for profile, _, email in ids.iter_rows():
        want = expected.traits("user", profile)
        # Emails are normalized as at ingestion: trimmed and lower-cased.
        for text in (email, f"  {email.upper()} "):
            response = client.get(profile_path(f"email:{text}", "traits"), params={"limit": 200})
            assert response.status_code == 200 and response.json()["traits"] == want
    for id_type, id_value, profile in (
        expected.identities.select("id_type", "id_value", "profile_id").head(40).iter_rows()
    ):
        response = client.get(
            profile_path(f"{id_type}:{id_value}", "traits"), params={"limit": 200}
        )
        assert response.json()["traits"] == expected.traits("user", profile)


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "1.5", ""])
def test_limits_outside_1_to_200_are_400(
    client: httpx.Client, expected: Expected, limit: str
) -> None:
    profile = _sample(expected, 1)[0]
    response = client.get(profile_path(f"profile_id:{profile}", "traits"), params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_limits_at_the_bounds(client: httpx.Client, expected: Expected) -> None:
    profile = _sample(expected, 1)[0]
    path = profile_path(f"profile_id:{profile}", "traits")
    assert len(client.get(path, params={"limit": 1}).json()["traits"]) == 1
    assert client.get(path, params={"limit": 200}).json()["cursor"]["limit"] == 200


@pytest.mark.parametrize(
    ("external_id", "status"),
    [
        ("no-colon", 400),
        (":missing-type", 400),
        ("user_id:", 400),
        ("user_id:%20%20", 400),
        ("phone:123", 400),  # not a configured identifier type
        ("group_id:acct_1", 400),  # an account id type on the users collection
        ("user_id:does-not-exist", 404),
        ("profile_id:p_0000", 404),
    ],
)
def test_bad_and_unknown_ids(client: httpx.Client, external_id: str, status: int) -> None:
    response = client.get(profile_path(external_id, "traits"))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == (
        "validation_error" if status == 400 else "not_found"
    )


def test_unknown_space_collection_and_cursor(client: httpx.Client, expected: Expected) -> None:
    profile = _sample(expected, 1)[0]
    ext = f"profile_id:{profile}"
    assert (
        client.get(f"/v1/spaces/other/collections/users/profiles/{ext}/traits").status_code == 404
    )
    assert client.get(f"/v1/spaces/demo/collections/teams/profiles/{ext}/traits").status_code == 400
    bad = client.get(profile_path(ext, "traits"), params={"next": "%%%not-a-cursor"})
    assert bad.status_code == 400
    assert client.get(profile_path("user_id:x", "nothing")).status_code == 404


def test_fast_path_and_fastapi_answer_alike(client: httpx.Client, expected: Expected) -> None:
    """The fast path takes parameters in plain forms only (`limit=3`, `verbose=true`); other
    spellings of the same values (`limit=+3`, `verbose=1`) go through FastAPI."""
    account = expected.accounts["account_id"][0]
    cases = [
        (profile_path(expected.external_id(p), r), fast, slow)
        for p in _sample(expected, 4)
        for r, fast, slow in [
            ("traits", {"limit": "10"}, {"limit": "+10"}),
            ("traits", {"limit": "3", "class": "audience"}, {"limit": "+3", "class": "audience"}),
            ("traits", {"verbose": "true", "include": "plan,known_users"},
             {"verbose": "1", "include": "plan,known_users"}),
            ("external_ids", {"limit": "1"}, {"limit": "+1"}),
            ("metadata", {"verbose": "false"}, {"verbose": "0"}),
            ("links", {"limit": "20"}, {"limit": "+20"}),
        ]
    ]  # fmt: skip
    cases += [
        (profile_path(f"group_id:{account}", "links", "accounts"), {"limit": "2"}, {"limit": "+2"}),
        (profile_path("user_id:nobody", "traits"), {"limit": "5"}, {"limit": "+5"}),
        (profile_path("bad", "traits"), {"limit": "5"}, {"limit": "+5"}),
        ("/v1/spaces/other/collections/users/profiles/user_id:x/metadata", {"verbose": "true"},
         {"verbose": "1"}),
    ]  # fmt: skip
    for path, fast_params, slow_params in cases:
        fast = client.get(path, params=fast_params)
        slow = client.get(path, params=slow_params)
        assert (fast.status_code, fast.json()) == (slow.status_code, slow.json()), path
        assert fast.headers.get("x-as-of") == slow.headers.get("x-as-of")
    path, fast_params, slow_params = cases[1]
    nxt = client.get(path, params=fast_params).json()["cursor"]["next"]
    fast = client.get(path, params={**fast_params, "next": nxt})
    slow = client.get(path, params={**slow_params, "next": nxt})
    assert fast.json() == slow.json()


def test_unknown_query_parameters_are_400(client: httpx.Client, expected: Expected) -> None:
    path = profile_path(f"profile_id:{_sample(expected, 1)[0]}", "traits")
    response = client.get(path, params={"limt": "5"})
    assert response.status_code == 400 and "limt" in response.json()["error"]["message"]
