"""How many group-commit lanes each serving process runs: enough batches in flight for the cores."""
from selfcare import serve


def test_a_process_a_core_runs_one_lane_and_one_process_alone_runs_one_a_core(monkeypatch):
    monkeypatch.setattr(serve, "cores", lambda: 2)
    assert [serve.batch_lanes(processes) for processes in (1, 2, 3, 4)] == [2, 1, 1, 1]
    monkeypatch.setattr(serve, "cores", lambda: 8)
    assert [serve.batch_lanes(processes) for processes in (1, 2, 8)] == [8, 4, 1]
