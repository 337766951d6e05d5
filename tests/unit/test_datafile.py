import pytest

from billing.datafile import data_path, read_toml
from billing.errors import InvalidTariffData


def test_a_broken_data_file_stops_with_its_name(tmp_path):
    bad = tmp_path / "tariffs.toml"
    bad.write_text("[tariffs\n")
    with pytest.raises(InvalidTariffData, match="tariffs.toml: not valid TOML"):
        read_toml(bad, InvalidTariffData)


def test_the_path_given_wins_then_the_environment_then_the_default(tmp_path, monkeypatch):
    default = tmp_path / "default.toml"
    monkeypatch.setenv("SELFCARE_X", str(tmp_path / "env.toml"))
    assert data_path(tmp_path / "given.toml", "SELFCARE_X", default) == tmp_path / "given.toml"
    assert data_path(None, "SELFCARE_X", default) == tmp_path / "env.toml"
    monkeypatch.delenv("SELFCARE_X")
    assert data_path(None, "SELFCARE_X", default) == default
