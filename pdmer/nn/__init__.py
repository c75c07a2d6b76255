"""PyTorch building blocks of DSAML: adapter, transformer, network and losses."""

from pdmer.nn.adapter import LocalSpectrogramAdapter
from pdmer.nn.attention import (
    RelativeSelfAttention,
    TransformerEncoder,
    TransformerEncoderLayer,
    band_mask,
    band_to_dense,
)
from pdmer.nn.dsaml import DSAMLNet, DSAMLOutput
from pdmer.nn.losses import diagonal_attention_loss, emotion_loss, sequence_metrics

__all__ = [
    "DSAMLNet",
    "DSAMLOutput",
    "LocalSpectrogramAdapter",
    "RelativeSelfAttention",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "band_mask",
    "band_to_dense",
    "diagonal_attention_loss",
    "emotion_loss",
    "sequence_metrics",
]
