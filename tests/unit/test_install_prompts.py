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


def debian_sounds_in_a_chroot(chroot: Path) -> Path:
    """Debian's layout: sounds/en -> /etc/alternatives/asterisk-prompt-en -> the Allison set, both
    links absolute, so from outside the chroot the first one dangles."""
    sounds = chroot / "usr/share/asterisk/sounds"
    (sounds / "en_US_f_Allison").mkdir(parents=True)
    (chroot / "etc/alternatives").mkdir(parents=True)
    (chroot / "etc/alternatives/asterisk-prompt-en").symlink_to("/usr/share/asterisk/sounds/en_US_f_Allison")
    (sounds / "en").symlink_to("/etc/alternatives/asterisk-prompt-en")
    return sounds


def test_a_language_folder_linked_through_alternatives_in_a_chroot_gets_the_prompts_in_the_link_target(tmp_path):
    source, chroot = tmp_path / "sounds", tmp_path / "chroot"
    write_wav(source / "en" / "goodbye.wav")
    write_wav(source / "az" / "goodbye.wav")
    sounds = debian_sounds_in_a_chroot(chroot)

    installed = installer.install_prompts(sounds, source)

    assert (sounds / "en_US_f_Allison" / "goodbye.wav").read_bytes() == (source / "en" / "goodbye.wav").read_bytes()
    assert (sounds / "en").is_symlink()  # the link is left as Debian made it
    assert (sounds / "az" / "goodbye.wav").is_file()
    assert sorted(p.relative_to(sounds).as_posix() for p in installed) == ["az/goodbye.wav", "en/goodbye.wav"]


def test_the_root_can_be_named_and_a_link_with_no_target_anywhere_says_what_to_do(tmp_path, capsys):
    source, chroot = tmp_path / "sounds", tmp_path / "chroot"
    write_wav(source / "en" / "goodbye.wav")
    sounds = debian_sounds_in_a_chroot(chroot)
    assert installer.main([str(sounds), "--source", str(source), "--root", str(chroot)]) == 0
    assert (sounds / "en_US_f_Allison" / "goodbye.wav").is_file()

    (chroot / "etc/alternatives/asterisk-prompt-en").unlink()  # now it leads nowhere, wherever the root
    capsys.readouterr()
    assert installer.main([str(sounds), "--source", str(source)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "is a symlink to /etc/alternatives/asterisk-prompt-en, which does not exist from here" in error
    assert "pass --root" in error


def test_the_script_run_as_a_command_installs_into_a_chroot_with_debian_links(tmp_path):
    import subprocess
    import sys

    source, chroot = tmp_path / "sounds", tmp_path / "chroot"
    write_wav(source / "en" / "goodbye.wav")
    sounds = debian_sounds_in_a_chroot(chroot)
    run = subprocess.run([sys.executable, str(SCRIPT), str(sounds), "--source", str(source)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"installed 1 prompt files into {sounds} (en)\n"
    assert (sounds / "en_US_f_Allison" / "goodbye.wav").is_file()


def test_the_real_sid_chroot_english_folder_resolves_to_the_allison_set():
    chroot = Path.home() / ".cache/selfcare/asterisk-sid"
    sounds = chroot / "usr/share/asterisk/sounds"
    if not (sounds / "en").is_symlink():
        pytest.skip("the Asterisk chroot is not built yet (the Asterisk tests build it)")
    assert installer.language_folder(sounds, "en") == sounds / "en_US_f_Allison"
