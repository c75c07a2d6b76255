"""Requests the app refuses, with the HTTP status each answers."""


class AppError(Exception):
    """A request the app refuses; ``status`` is its HTTP status."""

    status = 400


class NotFound(AppError):
    """Absent, or another listener's (the two look the same)."""

    status = 404


class Invalid(AppError):
    """An upload or request that cannot be used (the message says why)."""

    status = 422


class TooLarge(AppError):
    status = 413
