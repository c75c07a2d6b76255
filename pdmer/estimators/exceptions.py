"""Warnings the estimators give about their data and their training."""

from __future__ import annotations


class CollapseWarning(UserWarning):
    """The fitted model barely responds to its input.

    Given when, on the validation songs (the training songs without a
    validation split), the predictions' standard deviation is under half
    the labels', or the best validation CCC stays near zero: the model
    learned little more than a constant. Lower ``outer_lr``, keep
    ``input_normalization`` on, or train longer.
    """


class SlowTrainingWarning(UserWarning):
    """The model is fitted where it will take hours: the paper's size on a CPU.

    The message estimates the time and names the CPU preset
    (``size="small"``); the paper's size is meant for a GPU.
    """


class FrameOffsetWarning(UserWarning):
    """Labels are shorter than the audio and no frame offset was given.

    Labels that start later than the audio (DEAM and PMEmo start at 15 s)
    are silently paired with the first frames unless ``frame_offset`` says
    where they start.
    """
