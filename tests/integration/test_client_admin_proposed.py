"""Credentials the caller proposes to the client admin API (what the operator does): the
service stores only their hashes, and a rotation repeated with the same pair changes nothing,
so a caller that lost an answer can repeat the call."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest

from client_admin_support import SPEC, create, key_status, new_ref, path, token_status
from conftest import RunningApp, client_audit


def pair() -> dict[str, str]:
    """A pair as the operator generates it."""
    return {
        "client_secret": "rgs_" + secrets.token_urlsafe(32),
        "api_key": "rgk_" + secrets.token_urlsafe(32),
    }


async def works(app: RunningApp, client_id: str, credentials: dict[str, str]) -> bool:
    token = await token_status(app, client_id, credentials["client_secret"])
    key = await key_status(app, credentials["api_key"])
    assert token == key, (token, key)  # a pair works or fails as a whole
    return token == 200


async def rotate(
    app: RunningApp, ref: tuple[str, str], overlap: int, proposed: dict[str, str]
) -> dict[str, Any]:
    body = {"overlap_seconds": overlap, "credentials": proposed}
    response = await app.client.post(path(*ref, "/rotate"), json=body)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_put_creates_the_client_with_the_proposed_pair_and_never_echoes_it(
    app: RunningApp,
) -> None:
    ref = new_ref()
    proposed = pair()
    response = await app.client.put(path(*ref), json={**SPEC, "credentials": proposed})
    assert response.status_code == 201, response.text
    assert response.json()["credentials"] is None
    assert proposed["client_secret"] not in response.text
    client_id = response.json()["client_id"]
    assert await works(app, client_id, proposed)
    assert response.json()["api_key_prefixes"] == [proposed["api_key"][:10]]

    # The PUT never changes credentials: a repeated one (another pair, even) is an update.
    again = await app.client.put(path(*ref), json={**SPEC, "credentials": pair()})
    assert again.status_code == 200, again.text
    assert again.json()["api_key_prefixes"] == [proposed["api_key"][:10]]
    assert await works(app, client_id, proposed)


async def test_a_proposed_rotation_overlaps_and_repeating_it_changes_nothing(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    ref = new_ref()
    old = await create(app, *ref)
    client_id = old["client_id"]
    new = pair()

    first = await rotate(app, ref, 3600, new)
    assert first["rotated"] is True
    assert (first["client_secret"], first["api_key"]) == (None, None)
    assert first["previous_credentials_expire_at"] is not None
    assert await works(app, client_id, old)
    assert await works(app, client_id, new)

    # The answer was lost, say: the caller repeats the very call.
    repeated = await rotate(app, ref, 3600, new)
    assert repeated["rotated"] is False
    assert repeated["previous_credentials_expire_at"] == first["previous_credentials_expire_at"]
    assert await works(app, client_id, old)  # not cut, as a second real rotation would
    assert await works(app, client_id, new)
    actions = [action for action, _ in await client_audit(db, client_id)]
    assert actions.count("client.credentials_rotated") == 1


async def test_concurrent_repeats_of_one_proposal_rotate_once(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    ref = new_ref()
    old = await create(app, *ref)
    new = pair()
    answers = await asyncio.gather(*(rotate(app, ref, 3600, new) for _ in range(6)))
    assert sorted(answer["rotated"] for answer in answers) == [False] * 5 + [True]
    actions = [action for action, _ in await client_audit(db, old["client_id"])]
    assert actions.count("client.credentials_rotated") == 1
    assert await works(app, old["client_id"], old)
    assert await works(app, old["client_id"], new)


async def test_proposing_without_an_overlap_cuts_the_old_pair_at_once(app: RunningApp) -> None:
    ref = new_ref()
    old = await create(app, *ref)
    new = pair()
    answer = await rotate(app, ref, 0, new)
    assert (answer["rotated"], answer["previous_credentials_expire_at"]) == (True, None)
    assert not await works(app, old["client_id"], old)
    assert await works(app, old["client_id"], new)


@pytest.mark.parametrize(
    ("proposed", "field"),
    [
        ({"client_secret": "rgs_short", "api_key": pair()["api_key"]}, "client_secret"),
        ({"client_secret": pair()["client_secret"], "api_key": "rgs_" + "a" * 43}, "api_key"),
        (
            {"client_secret": pair()["client_secret"] + "\n", "api_key": pair()["api_key"]},
            "client_secret",
        ),
        ({"client_secret": pair()["client_secret"]}, "api_key"),
        ({"api_key": pair()["api_key"]}, "client_secret"),
    ],
)
async def test_a_malformed_or_half_proposal_is_422_and_rotates_nothing(
    app: RunningApp, proposed: dict[str, str], field: str
) -> None:
    ref = new_ref()
    old = await create(app, *ref)
    body = {"overlap_seconds": 0, "credentials": proposed}
    response = await app.client.post(path(*ref, "/rotate"), json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == f"credentials.{field}"
    assert await works(app, old["client_id"], old)


async def test_a_proposed_key_used_before_is_409_and_changes_nothing(app: RunningApp) -> None:
    ref, other = new_ref(), new_ref()
    mine = await create(app, *ref)
    theirs = await create(app, *other)
    taken = {"client_secret": pair()["client_secret"], "api_key": theirs["api_key"]}

    body = {"overlap_seconds": 0, "credentials": taken}
    rotated = await app.client.post(path(*ref, "/rotate"), json=body)
    assert (rotated.status_code, rotated.json()["field"]) == (409, "credentials.api_key")
    assert await works(app, mine["client_id"], mine)

    created = await app.client.put(path(*new_ref()), json={**SPEC, "credentials": taken})
    assert created.status_code == 409, created.text
    assert created.json()["field"] == "credentials.api_key"
    assert await works(app, theirs["client_id"], theirs)


async def test_the_current_key_with_another_secret_is_refused_not_taken_for_a_repeat(
    app: RunningApp,
) -> None:
    ref = new_ref()
    old = await create(app, *ref)
    other = {"client_secret": pair()["client_secret"], "api_key": old["api_key"]}
    body = {"overlap_seconds": 0, "credentials": other}
    response = await app.client.post(path(*ref, "/rotate"), json=body)
    assert (response.status_code, response.json()["field"]) == (409, "credentials.client_secret")
    assert await works(app, old["client_id"], old)
    assert await token_status(app, old["client_id"], other["client_secret"]) == 401
