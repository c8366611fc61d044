"""The one exception type for problems a user can fix."""


class UserError(Exception):
    """Bad input or bad config. The message names the file or key and says what to do.

    Commands print the message (no traceback) and exit non-zero.
    """
