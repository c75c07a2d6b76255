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

import numpy as np
import soundfile as sf
import soxr

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


def _check_modes(channels) -> tuple:
    channels = (channels,) if isinstance(channels, str) else tuple(channels)
    bad = [c for c in channels if c not in CHANNEL_MODES]
    if bad or not channels:
        raise ValueError(f"channels must be among {CHANNEL_MODES}; got {bad or channels!r}.")
    return channels


def select_channels(data: np.ndarray, channels=("mean",)) -> dict:
    """``{mode: 1-D float32}`` from a ``(n_samples, n_channels)`` waveform."""
    out = {}
    for mode in _check_modes(channels):
        mono = data[:, 0] if mode == "first" or data.shape[1] == 1 else data.mean(axis=1)
        out[mode] = np.ascontiguousarray(mono, dtype=np.float32)
    return out


def read_audio(path, channels=("mean",)) -> tuple[dict, int]:
    """Decode a file into the requested mono signals at its own sample rate.

    The file is decoded in blocks straight into one array per mode, so a long
    stereo song never exists as a float32 ``(n_samples, 2)`` array.

    Parameters
    ----------
    path : str or os.PathLike
        A regular file in a format libsndfile reads (WAV, FLAC, OGG, MP3
        with libsndfile >= 1.1).
    channels : sequence of {"mean", "first"}, default=("mean",)

    Returns
    -------
    signals : dict
        ``{mode: ndarray of shape (n_samples,)}``, float32.
    sample_rate : int

    Raises
    ------
    AudioError
        The file is not a regular file, cannot be decoded, or holds clearly
        less audio than its header announces (an interrupted download or
        copy). A file whose header announces no length (an MP3 without a
        Xing/Info header, Ogg) cannot be told from a shorter song.
    """
    path = check_audio_path(path)
    modes = _check_modes(channels)
    try:
        with sf.SoundFile(path) as f:
            announced, rate, log = f.frames, f.samplerate, f.extra_info
            # read() stops at the header's length, like soundfile.read; not
            # blocks(), which pads an MP3's overestimated end with stale samples.
            buffers = {mode: np.empty(max(announced, 0), np.float32) for mode in modes}
            n = 0
            while len(block := f.read(_BLOCK, dtype="float32", always_2d=True)):
                for mode, mono in select_channels(block, modes).items():
                    buffers[mode][n:n + len(block)] = mono
                n += len(block)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(
            f"Cannot decode audio file {path}: {err}. Check that it is a "
            "complete WAV/FLAC/OGG/MP3 file (re-download or re-encode it)."
        ) from err
    _check_complete(path, n, announced, rate, log)
    if n == 0:
        raise AudioError(f"{path}: the audio is empty.")
    return {mode: buffer[:n] for mode, buffer in buffers.items()}, int(rate)


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
    signals, rate = read_audio(path, (channels,))
    return resample(signals[channels], rate, sample_rate, resampler), \
        rate if sample_rate is None else int(sample_rate)


def waveform_signals(data, rate, channels=("mean",), source="<array>") -> tuple[dict, int]:
    """:func:`read_audio` for an in-memory waveform (see :func:`as_waveform`)."""
    return select_channels(as_waveform(data, source), channels), _check_rate(rate, source)
