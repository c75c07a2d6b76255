"""Audio front end: label-grid segmentation, local log-mel patches, global embeddings."""

from pdmer.features.audio import AudioError, load_audio
from pdmer.features.base import GlobalEncoder
from pdmer.features.cache import cache_size, default_cache_dir, default_feature_dir
from pdmer.features.clips import ClipEncoder
from pdmer.features.container import SongFeatures
from pdmer.features.encoders import (
    ImageBindEncoder,
    available_encoders,
    get_global_encoder,
    register_encoder,
)
from pdmer.features.frontend import AudioFeatures
from pdmer.features.imagebind import imagebind_weights_path
from pdmer.features.logmel import LogMelStatsEncoder

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
