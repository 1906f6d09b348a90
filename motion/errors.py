"""Errors meant for users. The CLI prints their message on one line and exits non-zero."""


class UserError(Exception):
    """Base class: bad input from the user (file, config, checkpoint, plugin name).

    The message must name the offending file/field and say what was expected."""


class DataError(UserError, ValueError):
    """Invalid data (motion files, datasets)."""
