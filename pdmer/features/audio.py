"""Audio input: files and in-memory arrays to float32 waveforms, one convention.

Every waveform pdmer reads follows soundfile's layout and scale: a 1-D array
of samples, or a 2-D array of shape ``(n_samples, n_channels)``, with floats
in [-1, 1]; integer PCM arrays are scaled as soundfile scales the files they
come from (int16 divided by 32768, and so on). Each consumer then takes the
channels it needs (:data:`CHANNEL_MODES`) and its sample rate with its
resampler (:data:`RESAMPLERS`).
"""

from __future__ import annotations

import os
import re
import stat
from typing import NamedTuple

import numpy as np
import soundfile as sf
import soxr

from pdmer.features._stderr import decoder_notes_hidden

#: ``"mean"``: the mix of all channels (librosa's mono, pdmer's local patches);
#: ``"first"``: channel 0 only (what ImageBind's Kaldi fbank reads).
CHANNEL_MODES = ("mean", "first")
#: ``"soxr"``: soxr's high quality (librosa's default resampler); ``"sinc"``:
#: torchaudio's default windowed sinc (ImageBind's), see :mod:`pdmer.features.resample`.
RESAMPLERS = ("soxr", "sinc")

# A decoded file shorter than its header announces by more than this fraction
# is cut short. MP3 length estimates are off by ~0.25 % (encoder delay).
_TRUNCATION = 0.01
# libsndfile's log of a WAV/AIFF/W64 header whose sizes exceed the file:
# "data : 5292000 (should be 1763970)".
_HEADER_SIZE = re.compile(
    r"^\s*(?:RIFF|RIFX|RF64|FORM|riff|data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
_BLOCK = 1 << 18  # frames decoded per step
# Largest sample magnitude read from a file. A float file may go past full
# scale (1.0), but not by 60 dB: such a file is damaged or unnormalised, and
# its spectrogram overflows float32 (NaN features, NaN curves).
_MAX_SAMPLE = 1e3
# What libsndfile (>= 1.1) decodes, as messages name it.
_FORMATS = "WAV, FLAC, OGG, MP3 and AIFF"


class AudioError(ValueError):
    """An audio item cannot be used: unreadable, cut short, empty, silent or too short."""


def check_audio_path(path) -> str:
    """``path`` as a string if it names a regular file; a clear error otherwise.

    A FIFO, device or socket would block or never end when read, and a
    folder is not audio.
    """
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"Audio file not found: {path}") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)"
                if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise AudioError(f"{path} is {kind}, not an audio file: pass the path of a "
                         "WAV/FLAC/OGG/MP3 file (copy streamed audio to a file first).")
    return path


def as_waveform(data, source: str = "<array>") -> np.ndarray:
    """An in-memory waveform as ``(n_samples, n_channels)`` float32 (soundfile's layout).

    Parameters
    ----------
    data : array-like of shape (n_samples,) or (n_samples, n_channels)
        Floats in [-1, 1], or integer PCM: signed integers are divided by
        ``2 ** (bits - 1)`` and uint8 is centred on 128, as soundfile reads
        such files. A (n_channels, n_samples) array (librosa, torchaudio)
        has more channels than samples and is refused: pass its transpose.
    source : str, default="<array>"
        Named in error messages.

    Returns
    -------
    ndarray of shape (n_samples, n_channels), float32
    """
    data = np.asarray(data)
    kind = data.dtype.kind
    if kind == "i":
        data = data.astype(np.float32) / np.float32(2 ** (8 * data.itemsize - 1))
    elif kind == "u" and data.itemsize == 1:
        data = (data.astype(np.float32) - 128) / np.float32(128)
    elif kind != "f":
        raise AudioError(f"{source}: a waveform must hold floats in [-1, 1] or signed "
                         f"integer (or 8-bit unsigned) PCM; got dtype {data.dtype}.")
    if data.size == 0:
        raise AudioError(f"{source}: the audio is empty.")
    if data.ndim == 1:
        data = data[:, None]
    elif data.ndim != 2:
        raise AudioError(f"{source}: a waveform must be 1-D or (n_samples, n_channels); "
                         f"got shape {data.shape}.")
    elif data.shape[0] < data.shape[1]:
        raise AudioError(
            f"{source}: pdmer reads a 2-D waveform as (n_samples, n_channels), the layout "
            f"of soundfile.read; this one has shape {data.shape}, more channels than "
            "samples. For a (n_channels, n_samples) array (librosa, torchaudio) pass "
            "waveform.T; for mono, a 1-D array.")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{source}: the waveform contains NaN or infinite samples.")
    return np.asarray(data, dtype=np.float32)


def _check_rate(rate, source) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float, np.floating)) \
            or not np.isfinite(rate) or int(rate) != rate or int(rate) <= 0:
        raise AudioError(f"{source}: invalid sample rate {rate!r}; pass a positive whole "
                         "number of Hz.")
    return int(rate)


class Signal(NamedTuple):
    """A mono signal to derive from the audio: channel mode, sample rate, resampler.

    ``sample_rate`` None keeps the audio's own rate.
    """

    channels: str = "mean"
    sample_rate: int | None = None
    resampler: str = "soxr"


def _check_signals(signals: dict) -> dict:
    for name, signal in signals.items():
        if signal.channels not in CHANNEL_MODES or signal.resampler not in RESAMPLERS:
            raise ValueError(f"signal {name!r}: channels must be one of {CHANNEL_MODES} and "
                             f"resampler one of {RESAMPLERS}; got {signal}.")
    return signals


def _mono(block: np.ndarray, mode: str) -> np.ndarray:
    mono = block[:, 0] if mode == "first" or block.shape[1] == 1 else block.mean(axis=1)
    return np.ascontiguousarray(mono, dtype=np.float32)


class _Signals:
    """Builds the requested :class:`Signal` s from blocks of ``(n, n_channels)`` audio.

    A signal resampled with ``"sinc"`` is resampled as the blocks arrive
    (:class:`~pdmer.features.resample.SincResampler`), so only its output is
    kept; the others keep their channel mode at the audio's rate, resampled
    at the end (soxr works on the whole signal).
    """

    def __init__(self, signals: dict, rate: int, capacity: int):
        from pdmer.features.resample import SincResampler

        self.signals, self.rate, self.n = _check_signals(signals), rate, 0
        self.streams = {name: SincResampler(rate, s.sample_rate) for name, s in signals.items()
                        if s.resampler == "sinc" and s.sample_rate not in (None, rate)}
        # Outputs preallocated at their final length (no concatenation at the end).
        self.outputs = {name: np.empty(-(-capacity * s.sample_rate // rate), np.float32)
                        for name, s in signals.items() if name in self.streams}
        self.filled = dict.fromkeys(self.streams, 0)
        modes = {s.channels for name, s in signals.items() if name not in self.streams}
        self.buffers = {mode: np.empty(capacity, np.float32) for mode in modes}

    def _store(self, name: str, samples: np.ndarray) -> None:
        start, buffer = self.filled[name], self.outputs[name]
        if start + len(samples) > len(buffer):  # more than the header announced
            buffer = self.outputs[name] = np.concatenate([buffer[:start], samples])
        else:
            buffer[start:start + len(samples)] = samples
        self.filled[name] = start + len(samples)

    def add(self, block: np.ndarray) -> None:
        for mode, buffer in self.buffers.items():
            buffer[self.n:self.n + len(block)] = _mono(block, mode)
        for name, stream in self.streams.items():
            self._store(name, stream.push(_mono(block, self.signals[name].channels)))
        self.n += len(block)

    def result(self) -> dict:
        for name, stream in self.streams.items():
            self._store(name, stream.finish())
        out = {name: buffer[:self.filled[name]] for name, buffer in self.outputs.items()}
        self.outputs = None
        at_rate = {mode: buffer[:self.n] for mode, buffer in self.buffers.items()}
        self.buffers = None
        for name, signal in self.signals.items():
            if name not in out:
                out[name] = resample(at_rate[signal.channels], self.rate, signal.sample_rate,
                                     signal.resampler)
        return out


def read_audio(path, signals: dict) -> tuple[dict, int]:
    """Decode a file into the requested mono signals.

    The file is decoded in blocks straight into those signals, so a long
    stereo song never exists as a float32 ``(n_samples, 2)`` array, and a
    signal resampled with ``"sinc"`` never exists at the file's rate.

    Parameters
    ----------
    path : str or os.PathLike
        A regular file in a format libsndfile reads (WAV, FLAC, OGG, MP3
        with libsndfile >= 1.1).
    signals : dict
        ``{name: Signal(channels, sample_rate, resampler)}``.

    Returns
    -------
    signals : dict
        ``{name: ndarray of shape (n_samples,)}``, float32.
    sample_rate : int
        The file's sample rate.

    Raises
    ------
    AudioError
        The file is not a regular file, cannot be decoded, or holds clearly
        less audio than its header announces (an interrupted download or
        copy). A file whose header announces no length (an MP3 without a
        Xing/Info header, Ogg) cannot be told from a shorter song.
    """
    path = check_audio_path(path)
    with decoder_notes_hidden():
        try:
            f = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            # The file exists and is a regular file (checked above), whatever
            # libsndfile's reason says (for a text file named .mp3: "File does
            # not exist or is not a regular file").
            raise AudioError(
                f"Cannot decode audio file {path}: not a recognised audio format. pdmer "
                f"reads {_FORMATS} files; check that this one is audio and complete "
                "(download it again, or convert it, e.g. `ffmpeg -i song.m4a song.wav`)."
            ) from err
        try:
            with f:
                announced, rate, log = f.frames, f.samplerate, f.extra_info
                out = _Signals(signals, rate, max(announced, 0))
                # read() stops at the header's length, like soundfile.read; not
                # blocks(), which pads an MP3's overestimated end with stale samples.
                while len(block := f.read(_BLOCK, dtype="float32", always_2d=True)):
                    _check_samples(block, path, out.n, rate)
                    out.add(block)
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            reason = " ".join(str(err).split()).rstrip(".")
            raise AudioError(
                f"Cannot decode audio file {path}: {reason}. Check that it is a complete "
                f"{_FORMATS} file (download it again, or re-encode it)."
            ) from err
    _check_complete(path, out.n, announced, rate, log)
    if out.n == 0:
        raise AudioError(f"{path}: the audio is empty.")
    return out.result(), int(rate)


def _check_samples(block: np.ndarray, source, start: int, rate: int) -> None:
    """Refuse NaN, infinite or absurdly large samples, naming the first one."""
    if np.abs(block).max() <= _MAX_SAMPLE:  # False for NaN
        return
    frame, channel = np.argwhere(~(np.abs(block) <= _MAX_SAMPLE))[0]
    raise AudioError(
        f"{source}: sample {start + frame} ({(start + frame) / rate:.3f} s), channel "
        f"{channel + 1}, is {block[frame, channel]:g}; samples must be finite and within "
        f"+-{_MAX_SAMPLE:g} (full scale is 1). The file is damaged or was written "
        "unnormalised: export it again.")


def waveform_signals(data, rate, signals: dict, source="<array>") -> tuple[dict, int]:
    """:func:`read_audio` for an in-memory waveform (see :func:`as_waveform`)."""
    data = as_waveform(data, source)
    rate = _check_rate(rate, source)
    out = _Signals(signals, rate, len(data))
    for lo in range(0, len(data), _BLOCK):
        out.add(data[lo:lo + _BLOCK])
    return out.result(), rate


def _check_complete(path, decoded: int, announced: int, rate: int, log: str) -> None:
    """Refuse a file that holds clearly less audio than its header announces."""
    # Containers whose sizes libsndfile clamps to the file (WAV, AIFF, W64):
    # compare the sizes the header claims with what the file holds.
    held = [int(actual) / int(claimed) for claimed, actual in _HEADER_SIZE.findall(log)
            if 0 < int(claimed) < 0xFFFFFFFF]  # 0 / 0xFFFFFFFF: "unknown" (streamed)
    fraction = min([1.0] + held)
    if announced > 0:  # MP3 (Xing/Info header), FLAC: frames announced vs decoded
        fraction = min(fraction, decoded / announced)
    if fraction < 1 - _TRUNCATION:
        seconds = decoded / rate
        raise AudioError(
            f"{path} is cut short: its header announces about {seconds / fraction:.1f} s "
            f"of audio but only {seconds:.1f} s could be decoded (an interrupted download "
            "or copy?). Download it again; to use the part that is there, re-encode it "
            "(e.g. `ffmpeg -i in.mp3 out.wav`).")


def resample(waveform: np.ndarray, rate: int, sample_rate: int | None,
             resampler: str = "soxr") -> np.ndarray:
    """A mono float32 waveform at ``sample_rate`` (None or equal: unchanged).

    ``resampler``: ``"soxr"`` (high quality, librosa's default) or ``"sinc"``
    (:func:`pdmer.features.resample.sinc_resample`, torchaudio's default).
    """
    if resampler not in RESAMPLERS:
        raise ValueError(f"resampler must be one of {RESAMPLERS}; got {resampler!r}.")
    if sample_rate is None or int(sample_rate) == int(rate):
        return waveform
    if resampler == "sinc":
        from pdmer.features.resample import sinc_resample

        return sinc_resample(waveform, int(rate), int(sample_rate))
    return np.ascontiguousarray(
        soxr.resample(waveform, int(rate), int(sample_rate), quality="HQ"), dtype=np.float32)


def load_audio(path, sample_rate: int | None = None, channels: str = "mean",
               resampler: str = "soxr") -> tuple[np.ndarray, int]:
    """Read an audio file as a mono float32 waveform.

    Parameters
    ----------
    path : str or os.PathLike
        Any format libsndfile reads (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1).
    sample_rate : int, optional
        Resample to this rate. None keeps the file's rate.
    channels : {"mean", "first"}, default="mean"
        Mix all channels, or keep channel 0 (ImageBind's choice).
    resampler : {"soxr", "sinc"}, default="soxr"

    Returns
    -------
    waveform : ndarray of shape (n_samples,)
    sample_rate : int
        The waveform's sample rate.

    Examples
    --------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> sf.write(path, np.zeros((44100, 2), np.int16), 44100)
    >>> waveform, rate = load_audio(path, sample_rate=16000)
    >>> waveform.shape, waveform.dtype, rate
    ((16000,), dtype('float32'), 16000)
    """
    signals, rate = read_audio(path, {"audio": Signal(channels, sample_rate, resampler)})
    return signals["audio"], rate if sample_rate is None else int(sample_rate)
