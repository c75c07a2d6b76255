"""A tiny DEAM in the official layout and archives, with the official quirks.

Songs (id: edition, seconds, sample rate, channels):
  2, 3        2013 clips: per-rater files WITHOUT WorkerId
  1001-1006   2014 clips: per-rater files with WorkerId
  2001, 2002  2015 full songs: WorkerId, longer
Labels start at 15 s (``sample_15000ms``), every 0.5 s. Quirks reproduced:
rows padded with empty cells, arousal.csv one column wider than valence.csv,
audio shorter than its labels (1006),
static headers with a space after each comma and the ``valence_ max_mean``
typo, per-rater static files with different column names, odd sample rates
and mono files, a flat rater curve, a missing value inside a curve, a rater
in the arousal file only.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

AVG = "annotations/annotations averaged per song"
RATER = "annotations/annotations per each rater"
DYN = "dynamic (per second annotations)"

# id -> (duration s, sample rate, channels)
SONGS = {
    "2": (18.0, 44100, 2), "3": (18.0, 22050, 1),
    "1001": (18.0, 44100, 2), "1002": (18.0, 48000, 2), "1003": (18.0, 16000, 1),
    "1004": (18.5, 44100, 2), "1005": (18.0, 44100, 2), "1006": (17.8, 22050, 2),
    "2001": (20.0, 44100, 2), "2002": (21.0, 48000, 1),
}
WORKERS = ["W_a", "W_b", "W_c"]
# Labels as long as 18 s of audio although the audio ends at 17.8 s (like the
# DEAM clips decoded shorter than 45.0 s).
LABEL_SECONDS = {"1006": 18.0}


def n_frames(song_id) -> int:
    """Label frames of a song: whole 0.5 s frames from 15 s to its labels' end."""
    return int((LABEL_SECONDS.get(song_id, SONGS[song_id][0]) - 15.0) / 0.5)


def audio_frames(song_id) -> int:
    """Label frames entirely within the song's audio."""
    return min(n_frames(song_id), int((SONGS[song_id][0] - 15.0) / 0.5))


def curve(song_id, worker=0, dim=0) -> np.ndarray:
    """A deterministic label curve in [-1, 1]."""
    n = n_frames(song_id)
    t = np.arange(n)
    phase = int(song_id) * 0.7 + worker * 1.3 + dim * 2.1
    return np.round(0.6 * np.sin(0.4 * t + phase) + 0.1 * (worker - 1), 4)


def _cells(values, width):
    return [f"{v:g}" if np.isfinite(v) else "" for v in values] + [""] * (width - len(values))


def _write(path: Path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _samples(n):
    return [f"sample_{15000 + 500 * i}ms" for i in range(n)]


def build(root) -> Path:
    """Write the extracted tiny DEAM under ``root``; returns root."""
    root = Path(root)
    rng = np.random.default_rng(0)
    for sid, (seconds, rate, channels) in SONGS.items():
        n = int(seconds * rate)
        t = np.arange(n) / rate
        tone = 0.3 * np.sin(2 * np.pi * (220 + int(sid) % 7 * 40) * t)
        wave = (tone + 0.05 * rng.normal(size=n)).astype(np.float32)
        if channels == 2:
            wave = np.stack([wave, 0.8 * wave], axis=1)
        path = root / "MEMD_audio" / f"{sid}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave, rate, format="MP3")

    # Averaged dynamic: one row per song, padded; arousal one column wider.
    width = max(n_frames(s) for s in SONGS)
    for dim, name, extra in ((0, "arousal", 1), (1, "valence", 0)):
        lines = [",".join(["song_id"] + _samples(width + extra))]
        for sid in SONGS:
            mean = np.mean([curve(sid, w, dim) for w in range(3)], axis=0)
            lines.append(",".join([sid] + _cells(mean, width + extra)))
        _write(root / AVG / DYN / f"{name}.csv", lines)

    # Per-rater dynamic.
    for sid in SONGS:
        n = n_frames(sid)
        with_ids = int(sid) > 1000
        for dim, name in ((0, "arousal"), (1, "valence")):
            head = (["WorkerId"] if with_ids else []) + _samples(n + 2)
            lines = [",".join(head)]
            workers = list(range(3))
            if sid == "1005" and name == "arousal":
                workers.append(3)  # W_d: in the arousal file only
            for w in workers:
                values = curve(sid, w, dim) if w < 3 else curve(sid, 0, dim)
                if sid == "1002" and w == 2:
                    values = np.full(n, 0.2)  # slider never moved: a flat curve
                if sid == "1003" and w == 0 and dim == 0:
                    values = values.copy()
                    values[2] = np.nan  # a missing value inside the curve
                worker = WORKERS[w] if w < 3 else "W_d"
                lines.append(",".join(([worker] if with_ids else []) + _cells(values, n + 2)))
            _write(root / RATER / DYN / name / f"{sid}.csv", lines)

    # Static, averaged: spaces after commas; the 2015 file's extra columns and typo.
    clips = [s for s in SONGS if int(s) <= 2000]
    full = [s for s in SONGS if int(s) > 2000]
    lines = ["song_id, valence_mean, valence_std, arousal_mean, arousal_std"]
    lines += [f"{s}, {5 + int(s) % 3}.1, 1.2, {4 + int(s) % 4}.3, 0.9" for s in clips]
    _write(root / AVG / "song_level" / "static_annotations_averaged_songs_1_2000.csv", lines)
    lines = ["song_id, valence_mean, valence_std, valence_ max_mean, valence_max_std, "
             "valence_min_mean, valence_min_std, arousal_mean, arousal_std, arousal_max_mean, "
             "arousal_max_std, arousal_min_mean, arousal_min_std"]
    lines += [f"{s}, 6.0, 1.0, 7.5, 0.5, 4.0, 0.7, 3.5, 1.1, 5.0, 0.4, 2.0, 0.3" for s in full]
    _write(root / AVG / "song_level" / "static_annotations_averaged_songs_2000_2058.csv", lines)

    # Static, per rater: different column names in the two files.
    lines = ["workerID,SongId,Valence,Arousal"]
    lines += [f"{w},{s},{5 + i},{4 + i}" for s in clips for i, w in enumerate(WORKERS)]
    _write(root / RATER / "song_level" / "static_annotations_songs_1_2000.csv", lines)
    lines = ["SongId,WorkerId,Arousal_Average,Valence_Average,Arousal_Std"]
    lines += [f"{s},{w},{3 + i},{6 - i},0.5" for s in full for i, w in enumerate(WORKERS)]
    _write(root / RATER / "song_level" / "static_annotations_songs_2000_2058.csv", lines)

    # Metadata: each edition names its columns differently.
    _write(root / "metadata" / "metadata_2013.csv",
           ["song_id,file_name,Artist,Song title,start of the segment (min.sec),"
            "end of the segment (min.sec),Genre"]
           + [f"{s},{s}.mp3,Artist {s},Title {s},0.00,0.45,Rock" for s in SONGS if int(s) <= 1000])
    _write(root / "metadata" / "metadata_2014.csv",
           ["Id\tArtist\tTrack\tGenre"]
           + [f"{s}\tArtist {s}\tTrack {s}\tPop" for s in SONGS if 1000 < int(s) <= 2000])
    _write(root / "metadata" / "metadata_2015.csv",
           ["id,file_name,Artist,Title,Genre"]
           + [f"{s},{s}.mp3,Artist {s},Full {s},Jazz" for s in full])
    return root


ARCHIVES = {"audio": ("DEAM_audio.zip", "MEMD_audio"),
            "annotations": ("DEAM_Annotations.zip", "annotations"),
            "metadata": ("metadata.zip", "metadata")}


def zip_parts(root, out) -> dict:
    """Zip the three parts of ``root`` as the official archives into ``out``."""
    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, (name, top) in ARCHIVES.items():
        path = out / name
        with zipfile.ZipFile(path, "w") as zf:
            for f in sorted((root / top).rglob("*")):
                zf.write(f, f.relative_to(root).as_posix())
        paths[part] = path
    return paths
