"""The one exception type for mistakes a user can fix (a flag, a file, a workspace state).

``roost`` prints a ``UserError`` as one line without a traceback (exit code 2);
any other exception is a bug and keeps its traceback. It is a ``ValueError``,
so library callers (the server's 400 answers, tests) that catch ``ValueError``
for bad input keep working.
"""


class UserError(ValueError):
    """A problem the user can fix; the message says what is wrong, where, and what to do."""
