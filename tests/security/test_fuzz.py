"""Fuzzing every route: over 10,000 generated requests (hypothesis strategies for events,
bodies, query parameters, forms and headers; ``tests/hostile.py``) against the collector's
intake, the API and the dashboard, in this process on a real SQLite file.

No answer may be a 5xx; every refusal of the intake must be in ``rejects`` with its reason
(counted per reason, exactly); every good event sent among the hostile ones must be stored,
once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.hostile import Request, Tokens, any_request
from tests.inprocess import App, Client, running_app

PER_EXAMPLE = 25  # requests drawn together and sent at once (they share group commits)
EXAMPLES = 420
AT_LEAST = 10_000


@dataclass
class Tally:
    """What the answers said: requests per route, refusals per reason, good events stored."""

    routes: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    stored: set[str] = field(default_factory=set)

    def add(self, request: Request, answer: httpx.Response) -> None:
        where = (
            f"{request.method} {request.url[:200]!r} -> {answer.status_code} {answer.text[:300]}"
        )
        assert answer.status_code < 500, where
        self.routes[_group(request.route)] += 1
        if answer.status_code >= 400 and request.method != "HEAD" and not _is_page(request):
            assert answer.headers["content-type"].startswith("application/json"), where
            assert answer.json()["error"], where
        if not request.intake:
            return
        if request.route == "/e" and answer.status_code == 200:
            refused = {r["index"]: r["reason"] for r in answer.json()["rejected"]}
            self.rejected.update(refused.values())
            assert not refused.keys() & request.good.keys(), where  # good events are not refused
            self.stored.update(request.good.values())
        elif answer.status_code in (200, 204):
            self.stored.update(request.good.values())
        elif answer.json()["error"] != "method_not_allowed":
            self.rejected[answer.json()["error"]] += 1


def _group(route: str) -> str:
    if route.startswith("/api/"):
        return "api"
    return "dashboard" if route.startswith("/dashboard") else "collector"


def _is_page(request: Request) -> bool:
    return request.route.startswith("/dashboard")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def signed_in(app: App, name: str) -> Client:
    client = app.client()
    assert client.sign_in(name).status_code == 303
    return client


def test_hostile_requests_get_no_5xx_refusals_are_recorded_good_events_stored_once(
    app: App,
) -> None:
    pool = Tokens.of(app.sites["shop"], app.sites["other"])
    clients = {
        "stranger": app.client(),
        "operator": signed_in(app, "ops"),
        "customer": signed_in(app, "shopkeeper"),
    }
    tally = Tally()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.lists(any_request(pool, app.keys), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE),
        st.sampled_from(sorted(clients)),
    )
    def send(requests: list[Request], who: str) -> None:
        calls = [(r.method, r.url, {"headers": r.headers, "content": r.content}) for r in requests]
        for request, answer in zip(requests, clients[who].all(calls), strict=True):
            tally.add(request, answer)

    send()
    assert sum(tally.routes.values()) >= AT_LEAST
    assert min(tally.routes.values()) >= AT_LEAST // 10, tally.routes  # every part had its share
    # Every refusal is kept with its reason: as many per reason as the answers said.
    assert dict(app.query("SELECT reason, count(*) FROM rejects GROUP BY reason")) == dict(
        tally.rejected
    )
    # Every good event is stored, once.
    assert len(tally.stored) >= 1000
    stored = set()
    good = sorted(tally.stored)
    for start in range(0, len(good), 500):
        chunk = good[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        stored.update(
            event_id
            for (event_id,) in app.query(f"SELECT id FROM events WHERE id IN ({marks})", *chunk)
        )
    assert stored == tally.stored
