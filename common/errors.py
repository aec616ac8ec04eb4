"""Errors a user can act on. The CLI prints them as one line, never a traceback."""


class UserError(Exception):
    """Bad input or environment: the message says what is wrong and what to do."""
