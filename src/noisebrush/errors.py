"""User errors and warnings: anything a user can cause by a bad value or file raises a UserError subclass; input
that is used but probably not as the user meant (a prompt an unconditional model ignores, a size the model was not
trained at, a budget of hours) gives a :class:`NoisebrushWarning` through :func:`warn`.

Front ends (the CLI, the bench entry point) print an error's message on one line and exit with status 2, and a
warning's as one ``warning: …`` line; Python callers get ordinary :mod:`warnings` they can filter or turn into
errors. Only the standard library is imported here, so every layer may use it.
"""
import warnings

__all__ = ["UserError", "BadParameter", "NoisebrushWarning", "warn"]


class UserError(Exception):
    """A problem with the user's input: a bad parameter value, a missing or malformed file."""


class BadParameter(UserError, ValueError):
    """A parameter has a value the function cannot use. The message names the parameter."""


class NoisebrushWarning(UserWarning):
    """Input that is used, but likely not as meant. The message is one line and names the parameter or file."""


def warn(message: str) -> None:
    """Warn the user in one line (the CLI prints ``warning: MESSAGE`` on stderr)."""
    warnings.warn(message, NoisebrushWarning, stacklevel=3)
