"""The one exception type for problems a user can fix, and the checks that raise it for commands."""

import errno

from hydra.errors import InstantiationException
from omegaconf import OmegaConf

SOME_FILES_FAILED = (
    2  # exit status of a command that skipped unreadable input files and did the rest
)


class UserError(Exception):
    """Bad input or bad config. The message names the file or key and says what to do.

    Commands print the message (no traceback) and exit non-zero.
    """


class UnknownMetric(UserError):
    """optimized_metric names no metric the run logs: every trial of a search would fail the same
    way, so the Optuna sweeper stops at the first."""


def require_keys(cfg, usage: str) -> None:
    """Raise a UserError naming every required config key (`???`) the command line left unset."""
    missing = sorted(key for key in OmegaConf.missing_keys(cfg) if not key.startswith("hydra."))
    if missing:
        given = ", ".join(f"{key}=..." for key in missing)
        raise UserError(f"{given} {'is' if len(missing) == 1 else 'are'} required. Usage: {usage}")


def unwrap(error: BaseException) -> BaseException:
    """The error itself, not the InstantiationException that hydra.utils.instantiate wraps it in."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def disk_full(error: BaseException, then: str = "run the command again") -> UserError | None:
    """A full disk (or quota) as one line naming the file being written, else None."""
    if not isinstance(error, OSError) or error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    where = f" while writing {error.filename}" if error.filename else ""
    return UserError(f"the disk is full{where} ({error.strerror}). Free some space, then {then}.")
