"""Password guessing gets nowhere: sign-in attempts are limited per account and per client
address, with 429 and Retry-After, before any password is hashed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clickthru.dashboard.throttle import CHECKS_PER_ADDRESS, FAILURES_PER_ACCOUNT
from tests.inprocess import App, Client, running_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    with running_app(tmp_path) as running:
        yield running


def attempt(client: Client, name: str, password: str) -> httpx.Response:
    form = client.get("/dashboard/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    return client.post(
        "/dashboard/sign-in", data={"name": name, "password": password, "csrf": csrf[1]}
    )


def assert_limited(answer: httpx.Response, at_least: int) -> None:
    assert answer.status_code == 429, answer.text
    assert at_least <= int(answer.headers["retry-after"]) <= FAILURES_PER_ACCOUNT.seconds
    assert "Too many sign-in attempts" in answer.text
    assert "ct_session" not in answer.headers.get("set-cookie", "")


def test_an_account_is_locked_after_repeated_wrong_passwords_from_anywhere(app: App) -> None:
    # A guesser spreading over addresses stays under each address's limit.
    for n in range(FAILURES_PER_ACCOUNT.attempts):
        wrong = attempt(app.client(f"203.0.113.{n}"), "ops", f"guess number {n}")
        assert wrong.status_code == 400 and "Wrong name or password" in wrong.text
    for n in range(3):  # the right password too: the account waits out the window
        assert_limited(attempt(app.client(f"192.0.2.{n}"), "ops", "correct horse battery"), 60)
    # Other accounts are not held up.
    assert (
        attempt(app.client("192.0.2.99"), "shopkeeper", "correct horse battery").status_code == 303
    )


def test_a_wrong_name_counts_like_a_wrong_password(app: App) -> None:
    client = app.client()
    for _ in range(FAILURES_PER_ACCOUNT.attempts):
        assert attempt(client, "nobody", "not the password").status_code == 400
    assert_limited(attempt(client, "nobody", "not the password"), 60)


def test_one_address_is_limited_whatever_accounts_it_tries(app: App) -> None:
    guesser = app.client("198.51.100.66")
    for n in range(CHECKS_PER_ADDRESS.attempts):
        answer = attempt(guesser, f"user-{n % 25}", "not the password")
        assert answer.status_code == 400
    assert_limited(attempt(guesser, "shopkeeper", "correct horse battery"), 60)
    # Everyone else still signs in.
    assert attempt(app.client("198.51.100.67"), "ops", "correct horse battery").status_code == 303


def test_a_successful_sign_in_clears_the_accounts_failures(app: App) -> None:
    client = app.client()
    for _ in range(FAILURES_PER_ACCOUNT.attempts - 1):
        assert attempt(client, "ops", "not the password").status_code == 400
    assert attempt(client, "ops", "correct horse battery").status_code == 303
    other = app.client("192.0.2.200")
    for _ in range(FAILURES_PER_ACCOUNT.attempts - 1):
        assert attempt(other, "ops", "not the password").status_code == 400
