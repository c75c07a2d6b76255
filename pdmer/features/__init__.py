"""Audio front end: label-grid segmentation, local log-mel patches, global embeddings."""

from pdmer.features.audio import AudioError, load_audio
from pdmer.features.container import SongFeatures
from pdmer.features.encoders import GlobalEncoder, LogMelStatsEncoder, get_global_encoder
from pdmer.features.frontend import AudioFeatures

__all__ = [
    "AudioError",
    "AudioFeatures",
    "GlobalEncoder",
    "LogMelStatsEncoder",
    "SongFeatures",
    "get_global_encoder",
    "load_audio",
]
