"""Audio front end: label-grid segmentation, local log-mel patches, global embeddings."""

from pdmer.features.audio import AudioError, load_audio
from pdmer.features.cache import cache_size, default_cache_dir, default_feature_dir
from pdmer.features.container import SongFeatures
from pdmer.features.encoders import (
    ClipEncoder,
    GlobalEncoder,
    ImageBindEncoder,
    LogMelStatsEncoder,
    available_encoders,
    get_global_encoder,
    imagebind_weights_path,
    register_encoder,
)
from pdmer.features.frontend import AudioFeatures

__all__ = [
    "AudioError",
    "AudioFeatures",
    "ClipEncoder",
    "GlobalEncoder",
    "ImageBindEncoder",
    "LogMelStatsEncoder",
    "SongFeatures",
    "available_encoders",
    "cache_size",
    "default_cache_dir",
    "default_feature_dir",
    "get_global_encoder",
    "imagebind_weights_path",
    "load_audio",
    "register_encoder",
]
