"""The parsers under coverage-guided fuzzing (atheris, tests/fuzz/atheris_parsers.py), bounded in
runs and time; each target in its own process, as libFuzzer exits when it finds a crash. A crash
it finds is kept as an @example in test_parsers.py (the input is in the artifact it names)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

from .atheris_parsers import TARGETS  # noqa: E402  (after the skip: it imports atheris)

ROOT = Path(__file__).resolve().parents[2]
RUNS = 30_000
MAX_SECONDS = 20


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_parser_survives_coverage_guided_fuzzing(target, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.atheris_parsers", target, f"-runs={RUNS}",
         f"-max_total_time={MAX_SECONDS}", f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT, capture_output=True, text=True, timeout=MAX_SECONDS + 60)
    found = {artifact.name: artifact.read_bytes() for artifact in tmp_path.iterdir()}
    assert done.returncode == 0 and not found, (found, done.stderr[-3000:])
    assert "Done " in done.stderr
