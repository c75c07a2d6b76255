"""Music-like audio whose emotion follows a given (arousal, valence) curve.

Arousal sets tempo, note rate, loudness, articulation and percussion;
valence sets mode, dissonance, brightness and register (see the package
documentation). Vectorised over samples: a 20 s song takes milliseconds.
"""

from __future__ import annotations

import numpy as np

from pdmer.labels import frame_time
from pdmer.files import atomic_write
from pdmer_datasets.synthetic._seeds import AUDIO, stream

CUES = ("default", "swapped")
"""Which cues carry which dimension: the default mapping, or arousal and valence exchanged."""

_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)

_HOP = 64  # samples per control block (gains, brightness, event timing)
_TABLE = 2048  # wavetable length (one period)
_LEVELS = 32  # brightness levels of the wavetables
_RATIO_LO, _RATIO_HI = 0.3, 0.95  # harmonic decay ratio range of the tables


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _events(rate, sr, n):
    """Onset samples of a phase running at ``rate`` Hz (one value per block).

    An onset falls wherever the phase crosses an integer (linearly
    interpolated inside the block), plus one at sample 0.
    """
    phase = np.concatenate([[0.0], np.cumsum(rate) * (_HOP / sr)])
    cross = np.flatnonzero(np.floor(phase[1:]) > np.floor(phase[:-1]))
    target = np.floor(phase[cross + 1])
    frac = (target - phase[cross]) / (phase[cross + 1] - phase[cross])
    idx = np.round((cross + frac) * _HOP).astype(np.int64)
    idx = np.unique(np.concatenate([[0], idx]))
    return idx[idx < n]


def _n_harmonics(wanted, top_midi, sr):
    """Harmonics that stay below 0.45 * sr for the highest note (>= 1)."""
    return int(max(1, min(wanted, 0.45 * sr // _midi_hz(top_midi))))


def _wavetables(n_harm, even_weight):
    """(n_levels * table,) float32: one period per brightness level.

    Harmonic ``k`` has amplitude ``ratio ** (k - 1)`` (times ``even_weight``
    for even ``k``); every level has the same power, so brightness does not
    change loudness.
    """
    ratios = np.linspace(_RATIO_LO, _RATIO_HI, _LEVELS)
    k = np.arange(1, n_harm + 1)
    amps = ratios[:, None] ** (k - 1) * np.where(k % 2 == 0, even_weight, 1.0)
    amps /= np.sqrt(np.sum(amps ** 2, axis=1, keepdims=True))
    phase = 2 * np.pi * np.arange(_TABLE) / _TABLE
    tables = np.zeros((_LEVELS, _TABLE))
    for j in range(n_harm):  # no BLAS: it is slow when threads compete
        tables += amps[:, j:j + 1] * np.sin((j + 1) * phase)
    return tables.astype(np.float32).ravel()


def _level_offsets(ratio_ctl, n):
    """Per-sample offset of the brightness level into a wavetable array."""
    lev = np.rint((ratio_ctl - _RATIO_LO) / (_RATIO_HI - _RATIO_LO) * (_LEVELS - 1))
    lev = np.clip(lev, 0, _LEVELS - 1).astype(np.intp) * _TABLE
    return np.repeat(lev, _HOP)[:n]


class _Notes:
    """Per-sample bookkeeping of a monophonic note sequence.

    ``lengths`` are the note durations in samples and ``dt`` the time since its
    onset in seconds. When the first onset is after sample 0, a silent dummy
    note is prepended; per-note arrays passed to the methods are given for
    the real notes only.
    """

    def __init__(self, n, onsets, sr, velocity=None):
        onsets = np.asarray(onsets, dtype=np.int64)
        velocity = np.ones(len(onsets)) if velocity is None else np.asarray(velocity)
        self.padded = len(onsets) == 0 or onsets[0] > 0
        if self.padded:
            onsets = np.concatenate([[0], onsets])
            velocity = np.concatenate([[0.0], velocity])
        self.n, self.sr, self.onsets = n, sr, onsets
        self.velocity = velocity
        self.lengths = np.diff(np.append(onsets, n))
        self.dt = np.arange(n, dtype=np.float32)
        self.dt -= np.repeat(onsets.astype(np.float32), self.lengths)
        self.dt *= np.float32(1.0 / sr)

    def gather(self, per_note):
        """Per-sample values of a per-note array."""
        per_note = np.asarray(per_note, dtype=np.float32)
        if self.padded:
            per_note = np.concatenate([per_note[:1], per_note])
        return np.repeat(per_note, self.lengths)

    def envelope(self, attack, tau, release=0.012):
        """Linear attack, exponential decay (``tau`` scalar or per note) and a
        linear release before the next onset, scaled by the velocities."""
        env = np.minimum(self.dt * np.float32(1.0 / attack), np.float32(1.0))
        decay = self.dt * (self.gather(1.0 / np.asarray(tau)) if np.ndim(tau)
                           else np.float32(1.0 / tau))
        np.negative(decay, out=decay)
        np.exp(decay, out=decay)
        env *= decay
        if self.padded or not np.all(self.velocity == 1):
            env *= np.repeat(self.velocity.astype(np.float32), self.lengths)
        if release:
            r = int(round(release * self.sr))
            ramp = np.arange(r, 0, -1, dtype=np.float32) / np.float32(r + 1)
            ends = self.onsets[1:]
            pos = (ends[:, None] - r + np.arange(r)[None, :]).ravel()
            ok = pos >= 0
            env[pos[ok]] *= np.tile(ramp, len(ends))[ok]
        return env

    def tone(self, table, level_offset, freq):
        """Wavetable oscillator at ``freq`` Hz per note; the phase restarts
        at each onset (where the envelope is zero)."""
        ph = self.dt * self.gather(np.asarray(freq, dtype=np.float64) * _TABLE)
        i = ph.astype(np.intp)
        i &= _TABLE - 1
        i += level_offset
        return table.take(i, mode="clip")


def _band_noise(rng, length, sr, low, high):
    """Unit-variance white noise band-limited to [low, high] Hz (by FFT)."""
    spec = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length, 1.0 / sr)
    low = min(low, 0.4 * sr)
    spec[(freqs < low) | (freqs > high)] = 0.0
    x = np.fft.irfft(spec, n=length)
    return x / (np.std(x) + 1e-12)


def _drum_samples(rng, sr):
    """One-shot kick, snare and hi-hat samples (float32, 0.4 s each).

    The hi-hat is broadband high-frequency noise, so percussion density also
    widens the spectrum.
    """
    length = int(0.4 * sr)
    t = np.arange(length) / sr
    f_hi, f_lo = rng.uniform(110, 150), rng.uniform(40, 55)
    kick = np.sin(2 * np.pi * (f_lo * t + (f_hi - f_lo) * 0.035 * -np.expm1(-t / 0.035)))
    kick *= np.exp(-t / rng.uniform(0.09, 0.14))
    snare = 0.3 * _band_noise(rng, length, sr, 1000.0, 5000.0) \
        + 0.25 * np.sin(2 * np.pi * rng.uniform(170, 220) * t)
    snare *= np.exp(-t / rng.uniform(0.05, 0.09))
    hat = _band_noise(rng, length, sr, 6000.0, sr / 2)
    hat *= np.exp(-t / rng.uniform(0.02, 0.04))
    attack = np.minimum(t / 0.001, 1.0)  # no click at the onset
    return tuple((x * attack).astype(np.float32) for x in (kick, snare, hat))


def synthesize(curve, frame_offset, sr, rng, cues="default"):
    """Mono float32 audio of one song whose emotion follows ``curve`` (see :data:`CUES`)."""
    n_frames = curve.shape[0]
    n = int(round(frame_time(n_frames, frame_offset) * sr))
    n_ctl = -(-n // _HOP)
    t_ctl = (np.arange(n_ctl) + 0.5) * (_HOP / sr)
    centers = frame_time(np.arange(n_frames) + 0.5, frame_offset)
    aro = np.interp(t_ctl, centers, curve[:, 0])  # one value per block
    val = np.interp(t_ctl, centers, curve[:, 1])
    if cues == "swapped":
        aro, val = val, aro

    def up(x):  # control blocks -> samples
        return np.repeat(np.asarray(x, dtype=np.float32), _HOP)[:n]

    def at(x, samples):  # control value at given samples
        return x[np.asarray(samples) // _HOP]

    # Song identity: key, tempo, timbre.
    tonic = 45 + int(rng.integers(12))
    tempo = rng.uniform(1.5, 2.3)  # beats per second at arousal 0
    even_weight = rng.uniform(0.2, 1.0)
    tilt = rng.uniform(-0.06, 0.06)
    attack = rng.uniform(0.004, 0.02)

    # ---- rhythm: beats and 4-beat bars; tempo rises with arousal.
    beat_rate = tempo * 2.0 ** (0.75 * aro)
    beats = _events(beat_rate, sr, n)
    bars = beats[::4]
    v_bar = at(val, bars)
    n_bars = len(bars)

    # ---- harmony per bar: major/minor by valence, dissonance when negative.
    major = rng.random(n_bars) < _sigmoid(8.0 * v_bar)
    degree = rng.choice([0, 5, 7], size=n_bars, p=[0.4, 0.3, 0.3])
    degree[0] = 0
    dissonant = rng.random(n_bars) < _sigmoid(8.0 * (-v_bar - 0.2))
    diss_interval = rng.choice([1, 6], size=n_bars)
    third = np.where(major, 4, 3)
    root = tonic + 12 + degree

    # Brightness: geometric harmonic decay, brighter for positive valence.
    ratio = 0.38 + 0.26 * (val + 1.0) + tilt
    level = _level_offsets(ratio, n)

    # ---- pad: sustained chords, one voice per chord tone.
    pad_tab = _wavetables(_n_harmonics(6, root.max() + 7, sr), even_weight)
    bar_notes = _Notes(n, bars, sr)
    env = bar_notes.envelope(attack=0.06, tau=3.0, release=0.03)
    pad = bar_notes.tone(pad_tab, level, _midi_hz(root)) \
        + bar_notes.tone(pad_tab, level, _midi_hz(root + third)) \
        + bar_notes.tone(pad_tab, level, _midi_hz(root + 7))
    if dissonant.any():
        pad += bar_notes.tone(pad_tab, level, _midi_hz(root + diss_interval)) \
            * bar_notes.gather(dissonant)
    pad *= env

    # ---- bass: chord root on beats, busier with arousal.
    beat_no = np.arange(len(beats))
    keep = (beat_no % 4 == 0) | (rng.random(len(beats)) < _sigmoid(3.0 * at(aro, beats)))
    b_pitch = tonic - 12 + degree[beat_no[keep] // 4]
    bass_tab = _wavetables(_n_harmonics(6, b_pitch.max(), sr), even_weight)
    bass_notes = _Notes(n, beats[keep], sr)
    bass = bass_notes.tone(bass_tab, _level_offsets(0.8 * ratio, n), _midi_hz(b_pitch))
    bass *= bass_notes.envelope(attack=0.005, tau=0.35)

    # ---- melody: note rate rises with arousal, register with valence.
    notes = _events(beat_rate * 2.0 ** (1.1 * aro + 0.1), sr, n)
    note_bar = np.searchsorted(bars, notes, side="right") - 1
    grid = np.arange(tonic - 12, tonic + 48)
    pc = (grid - tonic) % 12
    in_scale = {True: np.isin(pc, _MAJOR_SCALE), False: np.isin(pc, _MINOR_SCALE)}
    pitches = np.empty(len(notes), dtype=np.int64)
    prev = tonic + 15
    centers_n = tonic + 15 + 7.0 * at(val, notes)
    u = rng.random(len(notes))
    for k, b in enumerate(note_bar):
        c = centers_n[k]
        lo = int(c) - 9 - (tonic - 12)
        cand = grid[lo:lo + 19]
        cpc = pc[lo:lo + 19]
        ok = in_scale[bool(major[b])][lo:lo + 19]
        chord = (cpc == degree[b] % 12) | (cpc == (degree[b] + third[b]) % 12) \
            | (cpc == (degree[b] + 7) % 12)
        w = (np.exp(-np.abs(cand - prev) / 2.5 - np.abs(cand - c) / 4.0)
             * (1.0 + 2.0 * chord) * np.where(cand == prev, 0.3, 1.0) * ok)
        cw = np.cumsum(w)
        prev = int(cand[np.searchsorted(cw, u[k] * cw[-1], side="right")])
        pitches[k] = prev
    ioi = np.diff(np.append(notes, n)) / sr
    velocity = rng.uniform(0.7, 1.0, size=len(notes))
    # Legato at low arousal, staccato at high arousal.
    tau = np.clip(ioi * (1.7 - 0.7 * at(aro, notes)), 0.05, 2.0)
    mel_tab = _wavetables(_n_harmonics(10, pitches.max(), sr), even_weight)
    melody = np.zeros(n, dtype=np.float32)
    for voice in (0, 1):  # alternate two voices so notes may ring on
        sel = slice(voice, None, 2)
        if len(notes[sel]) == 0:
            continue
        mn = _Notes(n, notes[sel], sr, velocity=velocity[sel])
        tone = mn.tone(mel_tab, level, _midi_hz(pitches[sel]))
        tone *= mn.envelope(attack=attack, tau=tau[sel])
        melody += tone

    # ---- percussion: denser and louder with arousal.
    def hits(onsets, prob):
        return onsets[rng.random(len(onsets)) < prob]

    kick_on = hits(beats, _sigmoid(4.0 * (at(aro, beats) + 0.4)))
    snare_on = hits(beats[1::2], _sigmoid(4.0 * at(aro, beats[1::2])))
    eighths = _events(2.0 * beat_rate, sr, n)
    hat_on = hits(eighths, _sigmoid(5.0 * (at(aro, eighths) - 0.1)))
    kick, snare, hat = _drum_samples(rng, sr)
    drums = np.zeros(n + len(kick), dtype=np.float32)
    for onsets, sample, gain in ((kick_on, kick, 0.55), (snare_on, snare, 1.0),
                                 (hat_on, hat, 0.25)):
        hit_velocity = gain * rng.uniform(0.75, 1.0, size=len(onsets))
        for on, vel in zip(onsets.tolist(), hit_velocity.tolist()):
            drums[on:on + len(sample)] += np.float32(vel) * sample
    drums = drums[:n]

    # ---- mix: louder with arousal; soft limiter, no per-song normalisation.
    melody *= np.float32(0.3)
    melody += np.float32(0.2) * pad
    melody += np.float32(0.25) * bass
    melody *= up(10.0 ** ((8.0 * aro - 2.0) / 20.0))
    drums *= up(10.0 ** (6.0 * aro / 20.0))
    melody += drums
    np.tanh(melody, out=melody)
    melody *= np.float32(0.95)
    return melody


def write_song(path, curve, frame_offset, sr, random_state, index, cues="default"):
    """Synthesize song ``index`` and write it as a 16-bit mono WAV, atomically."""
    import soundfile as sf

    audio = synthesize(curve, frame_offset, sr, stream(random_state, AUDIO, index), cues)
    atomic_write(path, lambda tmp: sf.write(tmp, audio, sr, subtype="PCM_16", format="WAV"),
                 suffix=".wav")
