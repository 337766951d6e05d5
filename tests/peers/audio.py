"""What a caller heard, judged from the WAV a peer recorded: speech, a tone, or silence."""
from __future__ import annotations

import array
import math
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

from tests.peers.errors import PeerError


@dataclass(frozen=True)
class AudioStats:
    seconds: float
    rms: float  # over the whole file, 16-bit full scale = 32768
    voiced_ratio: float  # share of 20 ms frames louder than the silence threshold
    loudness_spread: float  # stdev/mean of voiced frames' RMS: speech varies, a tone does not

    def looks_like_speech(self) -> bool:
        return self.seconds >= 1.0 and self.voiced_ratio >= 0.2 and self.loudness_spread >= 0.15


def audio_stats(path: Path, silence_rms: float = 300.0) -> AudioStats:
    """Frame-level loudness of a 16-bit mono WAV (what a caller heard)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise PeerError(f"{path}: expected 16-bit mono, got {wav.getsampwidth() * 8}-bit "
                            f"{wav.getnchannels()} channel(s)")
        rate = wav.getframerate()
        samples = array.array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    frame = max(1, rate // 50)
    frame_rms = []
    for start in range(0, len(samples) - frame + 1, frame):
        chunk = samples[start:start + frame]
        frame_rms.append(math.sqrt(sum(s * s for s in chunk) / frame))
    total_rms = math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
    voiced = [r for r in frame_rms if r > silence_rms]
    if len(voiced) >= 2:
        mean = sum(voiced) / len(voiced)
        spread = math.sqrt(sum((r - mean) ** 2 for r in voiced) / len(voiced)) / mean
    else:
        spread = 0.0
    return AudioStats(
        seconds=len(samples) / rate if rate else 0.0,
        rms=total_rms,
        voiced_ratio=len(voiced) / len(frame_rms) if frame_rms else 0.0,
        loudness_spread=spread,
    )


def write_silence_wav(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * int(seconds * rate))
