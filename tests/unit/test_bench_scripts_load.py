"""The benchmarks are commands, run by hand and not by the suite: each must at least load, so a
broken one is found here and not by the next person who wants figures."""
import importlib

import pytest


@pytest.mark.parametrize("module, entry", [
    ("bench.serving", "SelfcareServe"), ("bench.sms", "main"), ("bench.fastagi", "main"),
    ("bench.api", "main"), ("bench.charging", "main"),
])
def test_the_benchmark_loads(module, entry):
    assert callable(getattr(importlib.import_module(module), entry))
