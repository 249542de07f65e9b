"""User errors: anything a user can cause by a bad value or file raises a UserError subclass.

Front ends (the CLI, the bench entry point) print its message on one line and exit with status 2.
Only the standard library is imported here, so every layer may use it.
"""


class UserError(Exception):
    """A problem with the user's input: a bad parameter value, a missing or malformed file."""


class BadParameter(UserError, ValueError):
    """A parameter has a value the function cannot use. The message names the parameter."""
