"""The label grid shared by every part of pdmer.

Dynamic emotion labels are one (arousal, valence) pair every 0.5 s. Label
frame ``i`` of a song covers audio ``[offset + 0.5 i, offset + 0.5 (i + 1)]``
seconds, where ``offset`` is the time the annotation starts (15 s for DEAM).
"""

FRAME_RATE = 2.0
"""Label frames per second."""

FRAME_SECONDS = 1.0 / FRAME_RATE
"""Duration of one label frame in seconds."""

DIMENSIONS = ("arousal", "valence")
"""Column order of every label and prediction array."""

AROUSAL = DIMENSIONS.index("arousal")
VALENCE = DIMENSIONS.index("valence")
