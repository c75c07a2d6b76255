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

QUADRANTS = {"happy": (1, 1), "tense": (-1, 1), "sad": (-1, -1), "calm": (1, -1)}
"""Names of the valence-arousal plane's quadrants, after Russell's circumplex,
with their (valence, arousal) signs: happy (pleasant, aroused), tense
(unpleasant, aroused), sad (unpleasant, not aroused), calm (pleasant, not
aroused). The plots and the listener app both name the quadrants from here."""
