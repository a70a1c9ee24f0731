"""Generated morning voices (WAV) for the demo pieces: no recording studio needed.

With `espeak-ng` on PATH the Chinese text is spoken (voice `cmn`), then padded with silence
or trimmed to the wanted length. Without it, or when it fails, a soft chime melody is made with
the standard library alone: a short pentatonic motif picked by a hash of the text, over a slow
bass, so each piece sounds a little different. Both are deterministic for the same text.
"""

from __future__ import annotations

import hashlib
import logging
import math
import operator
import shutil
import subprocess
import sys
import tempfile
import wave
from array import array
from functools import lru_cache
from io import BytesIO
from itertools import repeat
from pathlib import Path

log = logging.getLogger(__name__)

ESPEAK_VOICE = "cmn"
ESPEAK_SPEED = 150  # words a minute, espeak's default pace
ESPEAK_MAX_SPEED = 220  # how fast a long text may be spoken to fit the minute
ESPEAK_TIMEOUT = 30  # seconds for one run
LEAD_IN = 0.3  # seconds of silence before the speech
FADE_OUT = 0.5  # seconds faded out when speech is cut at the end

CHIME_RATE = 8000  # Hz; 60 s of 16-bit mono is under 1 MB
STEP = 0.6  # seconds between melody notes
MOTIF_STEPS = 8
NOTE_SECONDS, BASS_SECONDS = 2.0, 4.0
# Peaks: at most four melody notes ring at once, plus one bass note, so the sum stays far below
# the 16-bit limit and no sample needs clamping.
NOTE_PEAK, BASS_PEAK = 3000, 2500
# G major pentatonic over two octaves (Hz); the bass plays roots under it.
SCALE = [392.00, 440.00, 493.88, 587.33, 659.26, 783.99, 880.00, 987.77, 1174.66]
BASS = [98.00, 130.81, 146.83, 110.00]  # G2, C3, D3, A2


def espeak_path() -> str | None:
    """espeak-ng's path, or None where it is not installed (most CI machines)."""
    return shutil.which("espeak-ng")


def generate_voice(text: str, seconds: int = 60) -> bytes:
    """A WAV of exactly `seconds`: `text` spoken by espeak-ng, else a chime melody."""
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    spoken = _speak(text, seconds)
    if spoken is not None:
        samples, rate = spoken
    else:
        samples, rate = _chime(text, seconds), CHIME_RATE
    return _wav(samples, rate)


# --- espeak-ng ---------------------------------------------------------------------------


def _speak(text: str, seconds: int) -> tuple[array, int] | None:
    """The speech fitted to `seconds`, or None when espeak-ng is missing or fails."""
    exe = espeak_path()
    text = " ".join(text.split())
    if exe is None or not text:
        return None
    with tempfile.TemporaryDirectory(prefix="chendu-voice-") as tmp:
        out = Path(tmp) / "voice.wav"
        speed = ESPEAK_SPEED
        while True:
            read = _run_espeak(exe, text, speed, out)
            if read is None:
                return None
            samples, rate = read
            room = (seconds - LEAD_IN - FADE_OUT) * rate
            if len(samples) <= room or speed >= ESPEAK_MAX_SPEED:
                break
            # Too long for the minute: speak a little faster rather than cut a sentence.
            speed = min(ESPEAK_MAX_SPEED, math.ceil(speed * len(samples) / room))
    if rate >= 16000 and rate % 2 == 0:
        # 22050 Hz speech halved by averaging pairs (an odd last sample is dropped): half the
        # bytes, still clear.
        pairs = map(operator.add, samples[::2], samples[1::2])
        samples = array("h", map(operator.rshift, pairs, repeat(1)))
        rate //= 2
    return _fit(samples, rate, seconds), rate


def _run_espeak(exe: str, text: str, speed: int, out: Path) -> tuple[array, int] | None:
    command = [exe, "-v", ESPEAK_VOICE, "-s", str(speed), "-w", str(out), "--", text]
    try:
        # No shell; the text is one argument after "--", so it is never read as an option.
        subprocess.run(command, capture_output=True, timeout=ESPEAK_TIMEOUT, check=True)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("espeak-ng failed (%s); using a chime instead", error)
        return None
    try:
        with wave.open(str(out), "rb") as speech:
            if speech.getnchannels() != 1 or speech.getsampwidth() != 2:
                return None
            rate = speech.getframerate()
            samples = array("h")
            samples.frombytes(speech.readframes(speech.getnframes()))
    except (OSError, EOFError, ValueError, wave.Error):
        return None
    if sys.byteorder == "big":
        samples.byteswap()
    if len(samples) < rate // 5:  # nothing worth hearing was spoken
        return None
    return samples, rate


def _fit(samples: array, rate: int, seconds: int) -> array:
    """Lead-in silence, the speech, then silence to exactly `seconds` (cut with a fade)."""
    total = seconds * rate
    lead = min(round(LEAD_IN * rate), total)
    body = samples[: total - lead]
    if len(body) < len(samples):
        fade = min(len(body), round(FADE_OUT * rate))
        start = len(body) - fade
        body[start:] = array("h", [int(v * (fade - i) / fade) for i, v in enumerate(body[start:])])
    fitted = array("h", bytes(2 * lead))
    fitted.extend(body)
    fitted.extend(array("h", bytes(2 * (total - len(fitted)))))
    return fitted


# --- the chime melody --------------------------------------------------------------------


@lru_cache(maxsize=32)
def _tone(freq: float, length: float, peak: int, decay: float) -> tuple[int, ...]:
    """A bell-like tone: a sine with a soft octave, a 10 ms attack and an exponential decay
    that reaches zero at the end, so that notes never click."""
    n = round(length * CHIME_RATE)
    attack = CHIME_RATE // 100
    release = n // 5
    w = 2 * math.pi * freq / CHIME_RATE
    scale = peak / 1.25
    tone: list[int] = []
    for i in range(n):
        env = math.exp(-decay * i / CHIME_RATE)
        if i < attack:
            env *= i / attack
        if i > n - release:
            env *= (n - i) / release
        tone.append(int(scale * env * (math.sin(w * i) + 0.25 * math.sin(2 * w * i))))
    return tuple(tone)


def _chime(text: str, seconds: int) -> array:
    digest = hashlib.sha256(text.encode()).digest()
    total = seconds * CHIME_RATE
    # The motif: eight steps over the scale, a few of them rests; it never starts on a rest.
    motif = [b % (len(SCALE) + 3) for b in digest[:MOTIF_STEPS]]
    motif[0] %= len(SCALE)
    shifts = [0, digest[8] % 3, 0, -(digest[9] % 3)]  # the motif moves up and back down
    roots = [BASS[(digest[10] + i) % len(BASS)] for i in range(len(shifts))]
    out = [0] * total

    def add(start: int, tone: tuple[int, ...]) -> None:
        end = start + len(tone)  # every tone ends before `total`
        out[start:end] = map(operator.add, out[start:end], tone)

    step = round(STEP * CHIME_RATE)
    phrase_length = MOTIF_STEPS * step
    last = total - round(NOTE_SECONDS * CHIME_RATE)  # let the final note ring out
    phrase = 0
    while phrase * phrase_length < last:
        at = phrase * phrase_length
        root = roots[phrase % len(roots)]
        low = _tone(root, BASS_SECONDS, BASS_PEAK, 1.0)
        if at + len(low) <= total:
            add(at, low)
        shift = shifts[phrase % len(shifts)]
        for i, degree in enumerate(motif):
            start = at + i * step
            if start > last:
                break
            if degree >= len(SCALE):
                continue  # a rest
            freq = SCALE[min(len(SCALE) - 1, max(0, degree + shift))]
            add(start, _tone(freq, NOTE_SECONDS, NOTE_PEAK, 2.5))
        phrase += 1
    return array("h", out)


def _wav(samples: array, rate: int) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    buffer = BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()
