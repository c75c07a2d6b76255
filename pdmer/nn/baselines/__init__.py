"""The baseline networks of the DSAML paper's comparison (CRNN, DNN, MCRNN, DAMFF).

No official code exists for any of them; each is written from its paper's
description, and the estimator docstrings (:mod:`pdmer.estimators.baselines`)
say which details are pdmer's interpretation.
"""

from pdmer.nn.baselines._sequence import FrameSequenceNet, SequenceOutput
from pdmer.nn.baselines.crnn import CRNNNet
from pdmer.nn.baselines.damff import ChannelAttention, DAMFFNet, SpatialAttention
from pdmer.nn.baselines.dnn import DNNNet
from pdmer.nn.baselines.mcrnn import MCRNNNet

__all__ = ["CRNNNet", "ChannelAttention", "DAMFFNet", "DNNNet", "FrameSequenceNet",
           "MCRNNNet", "SequenceOutput", "SpatialAttention"]
