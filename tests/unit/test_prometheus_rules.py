"""The sample Prometheus config and alert rules in docs/ are what Debian's promtool accepts, and
each alert fires on its story (tests/prometheus/alerts_test.yml)."""
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import peers

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def promtool():
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed (scripts/install-deps installs Debian's prometheus)"
        if peers.required():
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(promtool, *args, cwd=REPO):
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.prometheus
def test_the_alert_rules_are_valid(promtool):
    assert "SUCCESS: 8 rules found" in run(promtool, "check", "rules", "docs/alerts.yml")


@pytest.mark.prometheus
def test_the_sample_scrape_config_is_valid_with_its_rules(promtool):
    out = run(promtool, "check", "config", "docs/prometheus.yml")
    assert "SUCCESS: docs/prometheus.yml is valid prometheus config file syntax" in out


@pytest.mark.prometheus
def test_each_alert_fires_on_its_story_and_not_on_its_near_miss(promtool):
    assert "SUCCESS" in run(promtool, "test", "rules", "alerts_test.yml", cwd=REPO / "tests" / "prometheus")
