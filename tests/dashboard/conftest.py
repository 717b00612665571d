"""The collector's app with users: an operator, a customer of one site, and their keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from clickthru.backend import open_store
from tests.conftest import AppCollector, make_app_collector

PASSWORD = "correct horse battery"


@dataclass
class Users:
    operator_key: str
    customer_key: str  # sees the site "shop" only


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppCollector, Users]]:
    collector = make_app_collector(tmp_path_factory.mktemp("dashboard"))
    store = open_store(str(collector.db))
    access = store.access
    access.add_user("ops", PASSWORD, operator=True, sites=[])
    access.add_user("shopkeeper", PASSWORD, operator=False, sites=["shop"])
    users = Users(access.add_read_key("ops"), access.add_read_key("shopkeeper"))
    store.close()
    collector.start()
    yield collector, users
    collector.stop()
