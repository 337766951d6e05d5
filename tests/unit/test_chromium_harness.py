"""The browser harness fails, not skips, when real peers are required and Chromium is missing."""
import pytest

from tests.peers import chromium


def test_a_missing_chromium_fails_the_run_when_peers_are_required(monkeypatch):
    monkeypatch.setattr(chromium, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("SELFCARE_REQUIRE_PEERS", "1")
    with pytest.raises(pytest.fail.Exception, match="/nonexistent/chromium is missing"):
        chromium.require()


def test_a_missing_chromium_skips_on_a_developer_machine(monkeypatch):
    monkeypatch.setattr(chromium, "CHROMEDRIVER", "/nonexistent/chromedriver")
    monkeypatch.delenv("SELFCARE_REQUIRE_PEERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromedriver is missing"):
        chromium.require()
