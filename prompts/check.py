"""Is every prompt there to play? `python -m prompts.check` exits 1 when one is missing.

The say grammar only emits catalogue ids (a unit test sweeps it), so a sounds folder with every
catalogue id in every language can voice any amount, date or call flow.
"""
from __future__ import annotations

import sys
import wave
from pathlib import Path

from prompts import catalogue as catalogue_module
from prompts.build import SOUNDS_DIR, sound_paths
from prompts.catalogue import LANGUAGES, Catalogue

ASTERISK_RATE_HZ = 8000


def missing_prompts(sounds_dir: str | Path | None = None,
                    catalogue: Catalogue | None = None) -> list[str]:
    """'<lang>/<id>' for each catalogue prompt without a .wav (or .ulaw) in that language."""
    sounds_dir = Path(sounds_dir or SOUNDS_DIR)
    catalogue = catalogue or catalogue_module.load()
    missing = []
    for lang in LANGUAGES:
        for prompt_id in catalogue.ids():
            if not all(path.is_file() for path in sound_paths(sounds_dir, lang, prompt_id)):
                missing.append(f"{lang}/{prompt_id}")
    return missing


def unplayable_prompts(sounds_dir: str | Path | None = None,
                       catalogue: Catalogue | None = None) -> list[str]:
    """'<lang>/<id>' for each .wav Asterisk would refuse: not 8 kHz, 16-bit, mono PCM."""
    sounds_dir = Path(sounds_dir or SOUNDS_DIR)
    catalogue = catalogue or catalogue_module.load()
    bad = []
    for lang in LANGUAGES:
        for prompt_id in catalogue.ids():
            wav_path, _ = sound_paths(sounds_dir, lang, prompt_id)
            if not wav_path.is_file():
                continue
            try:
                with wave.open(str(wav_path)) as audio:
                    ok = (audio.getframerate() == ASTERISK_RATE_HZ and audio.getnchannels() == 1
                          and audio.getsampwidth() == 2 and audio.getnframes() > 0)
            except (wave.Error, EOFError):
                ok = False
            if not ok:
                bad.append(f"{lang}/{prompt_id}")
    return bad


def main() -> int:
    missing = missing_prompts()
    unplayable = unplayable_prompts()
    for key in missing:
        print(f"missing: {key}")
    for key in unplayable:
        print(f"not 8 kHz 16-bit mono: {key}")
    if missing or unplayable:
        print("run: python -m prompts.build", file=sys.stderr)
        return 1
    print("every prompt is present in az, en and ru")
    return 0


if __name__ == "__main__":
    sys.exit(main())
