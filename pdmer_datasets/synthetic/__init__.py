"""Synthetic songs and simulated listeners for testing personalization.

:func:`generate` writes a small, fully offline data set: music-like audio
whose emotion follows a known smooth (arousal, valence) curve, and dynamic
labels from a population of simulated listeners who each perceive that
emotion in their own consistent way. It exists to test personalized models:
a model meta-trained on some listeners should adapt to a held-out listener
from one of their songs and then predict that listener's curves on other
songs better than a model trained on mean labels.

Each song's true curves are smooth, in [-0.95, 0.95], built from a few
segments (one every 4-7 s, at least three in songs of 6 s or more) with
2-5 s transitions. Within a song each dimension spans at least 0.8 and
arousal and valence correlate by less than 0.4 (6 s or longer songs), so
that one song separates a listener's response to each dimension.

How the emotion is made audible (all of it visible to a log-mel spectrogram):

- **arousal** sets the tempo and note rate, the loudness (16 dB for the
  tonal part from calm to excited), note articulation (legato to staccato)
  and the density and level of percussion (kick, snare and broadband
  hi-hat noise, which also widens the spectrum);
- **valence** sets the mode (major triads and scale versus minor), the
  dissonance (semitone and tritone clusters added to the chords when
  negative), the brightness (spectral tilt of the harmonic tones) and the
  register of the melody.

Each song has its own random key, tempo and timbre, so no single frequency
band gives the labels away. On the default data set, frame log-RMS
correlates 0.95 with true arousal, and a ridge regression on per-frame
log-mel statistics, cross-validated across songs, reaches r = 0.93 for
arousal and r = 0.82 for valence.

How listeners differ (see :class:`Listener` and :data:`LISTENER_KINDS`):
arousal and valence offsets and gains, a coupling that mixes arousal into
perceived valence, a reaction lag and smooth annotation noise, drawn from one
broad population; a mixture of kinds (``listener_mix``) adds listeners who
perceive valence reversed, are shifted far from the population, use a
compressed range or react 1-3 s late. Each listener is consistent over all
their songs, so one annotated song reveals them.

The generator's data conditions (sample rate, song length or length range,
label start, listener mixture, rater noise) are parameters of
:func:`generate`; :meth:`SyntheticDataset.annotator_table` with
``split="train"`` / ``"test"`` holds out listeners and songs.

Modules: :mod:`~pdmer_datasets.synthetic.listeners` (the listener model),
:mod:`~pdmer_datasets.synthetic.curves` (true curves),
:mod:`~pdmer_datasets.synthetic.synth` (audio), ``files`` (CSV files and
:func:`load`) and ``generator`` (:func:`generate`).
"""

from pdmer_datasets.synthetic.dataset import SyntheticDataset
from pdmer_datasets.synthetic.files import load
from pdmer_datasets.synthetic.generator import generate
from pdmer_datasets.synthetic.listeners import LISTENER_KINDS, Listener

__all__ = ["LISTENER_KINDS", "Listener", "SyntheticDataset", "generate", "load"]
