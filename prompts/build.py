"""Render the prompt catalogue to audio Asterisk can play: prompts/sounds/<lang>/<id>.wav + .ulaw.

    python -m prompts.build [--engine espeak|gtts|auto] [--only-missing] [--force]

espeak-ng is the default: offline and deterministic, so a rebuild changes no bytes. gTTS (en and ru
only; it has no Azerbaijani) is used when asked for and reachable, always with a short timeout,
and any failure falls back to espeak for that prompt. Every file is resampled to 8 kHz 16-bit mono
(a 48 kHz file does not play), trimmed of leading/trailing silence and normalised to -3 dBFS.

Incremental: sounds/manifest.json keeps a hash of each prompt's text, engine and pipeline; a prompt
is rendered again only when that hash changes or its files are gone.
Needs the apt packages espeak-ng and sox (libsox-fmt-mp3 too for gTTS' mp3).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prompts import catalogue as catalogue_module
from prompts.catalogue import LANGUAGES, Catalogue, Prompt

log = logging.getLogger("prompts.build")

SOUNDS_DIR = Path(__file__).with_name("sounds")
MANIFEST_NAME = "manifest.json"
# Bump when the audio pipeline changes so every prompt renders again.
PIPELINE_VERSION = "1:8k-s16-mono,trim,norm-3,no-dither"
ESPEAK_VOICES = {"az": "az", "en": "en-gb", "ru": "ru"}
ESPEAK_WORDS_PER_MINUTE = "150"
GTTS_LANGUAGES = {"en": "en", "ru": "ru"}
GTTS_TIMEOUT_SECONDS = 5
SEGMENT_GAP_SECONDS = "0.35"  # between the sentences of a multilingual prompt
ENGINES = ("espeak", "gtts", "auto")


class BuildError(RuntimeError):
    pass


# --- engines: text -> an audio file in whatever format the engine produces -------------------

def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise BuildError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")


def _espeak(text: str, lang: str, target: Path) -> Path:
    path = target.with_suffix(".espeak.wav")
    _run(["espeak-ng", "-v", ESPEAK_VOICES[lang], "-s", ESPEAK_WORDS_PER_MINUTE,
          "-w", str(path), text])
    return path


def _gtts(text: str, lang: str, target: Path) -> Path:
    from gtts import gTTS  # imported lazily: the offline build must not need it

    path = target.with_suffix(".gtts.mp3")
    gTTS(text, lang=GTTS_LANGUAGES[lang], timeout=GTTS_TIMEOUT_SECONDS).save(str(path))
    return path


def gtts_reachable() -> bool:
    """One short synthesis decides for the whole build (the endpoint is often firewalled)."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _gtts("test", "en", Path(tmp) / "probe")
        return True
    except Exception as error:  # network errors come in many types (requests, gTTSError, socket)
        log.info("gTTS not reachable (%s): using espeak-ng", type(error).__name__)
        return False


def engine_for(lang: str, requested: str, gtts_ok: bool) -> str:
    """The engine that voices `lang`: gTTS only when asked for, reachable and able to."""
    if requested in ("gtts", "auto") and gtts_ok and lang in GTTS_LANGUAGES:
        return "gtts"
    return "espeak"


# --- pipeline --------------------------------------------------------------------------------

def prompt_hash(prompt: Prompt, lang: str, engines: list[str]) -> str:
    parts = [PIPELINE_VERSION]
    for (voice_lang, text), engine in zip(prompt.segments(lang), engines):
        voice = ESPEAK_VOICES[voice_lang] if engine == "espeak" else GTTS_LANGUAGES[voice_lang]
        parts += [engine, voice, text]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _to_8k(source: Path, target: Path, pad: bool) -> None:
    # -D: no dither, so the same text always gives the same bytes (no git churn).
    command = ["sox", "-D", str(source), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
               str(target),
               "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"]
    if pad:
        command += ["pad", "0", SEGMENT_GAP_SECONDS]
    _run(command)


def render(prompt: Prompt, lang: str, engines: list[str], wav: Path, ulaw: Path) -> None:
    """Synthesise every segment, join, normalise, and write .wav and .ulaw atomically."""
    wav.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pieces = []
        segments = prompt.segments(lang)
        for index, ((voice_lang, text), engine) in enumerate(zip(segments, engines)):
            raw_target = Path(tmp) / f"seg{index}"
            synth = _gtts if engine == "gtts" else _espeak
            raw = synth(text, voice_lang, raw_target)
            piece = Path(tmp) / f"seg{index}.8k.wav"
            _to_8k(raw, piece, pad=index < len(segments) - 1)
            pieces.append(str(piece))
        joined_wav = Path(tmp) / "out.wav"
        joined_ulaw = Path(tmp) / "out.ulaw"
        _run(["sox", "-D", *pieces, "-b", "16", "-e", "signed-integer", str(joined_wav),
              "norm", "-3"])
        _run(["sox", "-D", str(joined_wav), "-t", "ul", "-r", "8000", "-c", "1", str(joined_ulaw)])
        shutil.move(joined_wav, wav.with_suffix(".wav.tmp"))
        shutil.move(joined_ulaw, ulaw.with_suffix(".ulaw.tmp"))
    os.replace(wav.with_suffix(".wav.tmp"), wav)
    os.replace(ulaw.with_suffix(".ulaw.tmp"), ulaw)


# --- the build -------------------------------------------------------------------------------

@dataclass
class BuildReport:
    rendered: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    fell_back: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"rendered {len(self.rendered)}, unchanged {len(self.unchanged)}, "
                f"removed {len(self.removed)}, fell back to espeak {len(self.fell_back)}")


def sound_paths(sounds_dir: Path, lang: str, prompt_id: str) -> tuple[Path, Path]:
    base = sounds_dir / lang / prompt_id
    return base.with_name(base.name + ".wav"), base.with_name(base.name + ".ulaw")


def _load_manifest(sounds_dir: Path) -> dict:
    path = sounds_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _save_manifest(sounds_dir: Path, manifest: dict) -> None:
    path = sounds_dir / MANIFEST_NAME
    text = json.dumps(dict(sorted(manifest.items())), indent=1, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


def _remove_stale(sounds_dir: Path, manifest: dict, wanted: set[str], report: BuildReport) -> None:
    """Delete audio of prompts that left the catalogue (only files this build made)."""
    for key in sorted(set(manifest) - wanted):
        lang, prompt_id = key.split("/", 1)
        for path in sound_paths(sounds_dir, lang, prompt_id):
            path.unlink(missing_ok=True)
        del manifest[key]
        report.removed.append(key)
        log.info("removed %s: no longer in the catalogue", key)


def build(catalogue: Catalogue | None = None, sounds_dir: Path | None = None,
          engine: str = "espeak", only_missing: bool = False, force: bool = False,
          languages: tuple[str, ...] = LANGUAGES, workers: int | None = None) -> BuildReport:
    if engine not in ENGINES:
        raise BuildError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} not found: apt-get install espeak-ng sox libsox-fmt-mp3")
    catalogue = catalogue or catalogue_module.load()
    sounds_dir = Path(sounds_dir or SOUNDS_DIR)
    sounds_dir.mkdir(parents=True, exist_ok=True)
    gtts_ok = engine != "espeak" and gtts_reachable()
    if engine == "gtts" and not gtts_ok:
        log.warning("gTTS requested but not reachable: every prompt falls back to espeak-ng")
    manifest = _load_manifest(sounds_dir)
    report = BuildReport()
    _remove_stale(sounds_dir, manifest, {f"{lang}/{p.id}" for lang in languages for p in catalogue},
                  report)

    jobs = []
    for lang in languages:
        for prompt in catalogue:
            key = f"{lang}/{prompt.id}"
            engines = [engine_for(voice, engine, gtts_ok) for voice, _ in prompt.segments(lang)]
            digest = prompt_hash(prompt, lang, engines)
            wav, ulaw = sound_paths(sounds_dir, lang, prompt.id)
            present = wav.exists() and ulaw.exists()
            if present and not force and (only_missing or manifest.get(key, {}).get("hash") == digest):
                report.unchanged.append(key)
                continue
            jobs.append((key, prompt, lang, engines, digest, wav, ulaw))

    def run(job):
        key, prompt, lang, engines, digest, wav, ulaw = job
        try:
            render(prompt, lang, engines, wav, ulaw)
        except Exception as error:
            if all(each == "espeak" for each in engines):
                raise
            log.warning("%s: gTTS failed (%s), falling back to espeak-ng", key, error)
            engines = ["espeak"] * len(engines)
            digest = prompt_hash(prompt, lang, engines)
            render(prompt, lang, engines, wav, ulaw)
            report.fell_back.append(key)
        return key, {"hash": digest, "engine": "+".join(sorted(set(engines)))}

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 4) as pool:
        for key, entry in pool.map(run, jobs):
            manifest[key] = entry
            report.rendered.append(key)
            log.debug("rendered %s with %s", key, entry["engine"])
    _save_manifest(sounds_dir, manifest)
    log.info("prompt build in %s: %s", sounds_dir, report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prompts.build", description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=ENGINES, default="espeak",
                        help="espeak (offline, default), gtts (en/ru online, falls back), auto")
    parser.add_argument("--only-missing", action="store_true",
                        help="render only prompts whose audio files do not exist")
    parser.add_argument("--force", action="store_true", help="render every prompt again")
    parser.add_argument("--sounds-dir", type=Path, default=SOUNDS_DIR)
    parser.add_argument("--catalogue", type=Path, default=None)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        report = build(catalogue_module.load(args.catalogue), args.sounds_dir, args.engine,
                       args.only_missing, args.force)
    except (BuildError, catalogue_module.CatalogueError) as error:
        print(f"prompt build failed: {error}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
