"""Errors a user can act on: each names the file, field or key and what was expected."""


class UserInputError(ValueError):
    """Bad input from the user (data file, config key, CLI argument).

    The CLI prints the message on one line and exits non-zero instead of a traceback.
    """


class ConfigError(UserInputError):
    """A configuration key is unknown or its value is out of range; ``key`` names it where one
    key is at fault (a caller adds where the value came from without parsing the message)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class DataError(UserInputError):
    """A dataset file is missing, malformed or inconsistent."""
