"""User-facing errors.

Raise :class:`RpntError` for anything a user can fix (bad file, bad argument, missing
object). The command line prints its message as one line and exits non-zero; the
traceback is shown only with ``--verbose``. The message should name the file, the object
path inside it, and the fix.
"""


class RpntError(Exception):
    """An error with a message meant for the person running rpnt."""
