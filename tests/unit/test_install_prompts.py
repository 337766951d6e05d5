"""scripts/install-prompts: our prompts into an Asterisk sounds dir, per language, 8 kHz mono only."""
from __future__ import annotations

import importlib.util
import wave
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-prompts"


def load_installer():
    loader = SourceFileLoader("install_prompts_under_test", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


installer = load_installer()


def write_wav(path: Path, rate: int = 8000, channels: int = 1, frames: int = 800) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x01\x00" * frames * channels)


def test_prompts_land_in_the_per_language_folders_asterisk_searches(tmp_path):
    source, dest = tmp_path / "sounds", tmp_path / "asterisk-sounds"
    write_wav(source / "az" / "welcome-2112.wav")
    write_wav(source / "ru" / "num" / "12.wav")
    (source / "ru" / "num" / "12.ulaw").write_bytes(b"\xff" * 800)
    (source / "manifest.json").write_text("{}")  # not a sound: stays out

    installed = installer.install_prompts(dest, source)

    assert sorted(path.relative_to(dest).as_posix() for path in installed) == [
        "az/welcome-2112.wav", "ru/num/12.ulaw", "ru/num/12.wav",
    ]
    assert (dest / "ru" / "num" / "12.wav").read_bytes() == (source / "ru" / "num" / "12.wav").read_bytes()
    assert not (dest / "manifest.json").exists()


def test_an_installed_prompt_replaces_a_stock_symlink_instead_of_writing_through_it(tmp_path):
    source, dest = tmp_path / "sounds", tmp_path / "asterisk-sounds"
    write_wav(source / "en" / "goodbye.wav")
    stock = tmp_path / "stock-goodbye.wav"
    write_wav(stock, frames=80)
    (dest / "en").mkdir(parents=True)
    (dest / "en" / "goodbye.wav").symlink_to(stock)
    stock_before = stock.read_bytes()

    installer.install_prompts(dest, source)

    assert not (dest / "en" / "goodbye.wav").is_symlink()
    assert stock.read_bytes() == stock_before


@pytest.mark.parametrize("rate, channels", [(48000, 1), (16000, 1), (8000, 2)])
def test_a_wav_asterisk_would_not_play_stops_the_install_before_anything_is_copied(tmp_path, rate, channels):
    source, dest = tmp_path / "sounds", tmp_path / "asterisk-sounds"
    write_wav(source / "az" / "a-good-one.wav")
    write_wav(source / "az" / "z-bad-one.wav", rate=rate, channels=channels)

    with pytest.raises(installer.BadPrompt, match="z-bad-one.wav"):
        installer.install_prompts(dest, source)
    assert not dest.exists()


def test_the_command_line_reports_what_it_installed_and_fails_on_an_empty_source(tmp_path, capsys):
    source, dest = tmp_path / "sounds", tmp_path / "asterisk-sounds"
    write_wav(source / "az" / "goodbye.wav")

    assert installer.main([str(dest), "--source", str(source)]) == 0
    assert "installed 1 prompt files" in capsys.readouterr().out
    assert installer.main([str(dest), "--source", str(tmp_path / "nothing-here")]) == 1
    assert "no such prompts directory" in capsys.readouterr().err


def test_the_repository_prompts_pass_the_installer_checks():
    repo_sounds = SCRIPT.parent.parent / "prompts" / "sounds"
    if not repo_sounds.is_dir():
        pytest.skip("prompts/sounds not generated yet")
    planned = installer.install_prompts(Path("/nonexistent-dest"), repo_sounds, dry_run=True)
    assert {path.parts[2] for path in planned} >= {"az", "en", "ru"}
