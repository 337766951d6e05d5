"""Drills: a peer fails while `selfcare serve` works, and what it does then is checked and measured."""
from __future__ import annotations

import pytest

from tests import peers
from tests.peers import pg_cluster


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of our own, to stop and restart at will (never the shared one)."""
    why_not = pg_cluster.available()
    if why_not:
        if peers.required():
            pytest.fail(why_not)
        pytest.skip(why_not)
    cluster = pg_cluster.OwnCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
