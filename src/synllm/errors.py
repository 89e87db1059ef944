"""User-facing errors.

Every error a user can cause (bad config, unknown model, missing file, checksum mismatch,
malformed model output) is a :class:`SynllmError` carrying one clear line. The CLI prints
``synllm: error: <line>`` and exits with status 2 instead of a traceback.
"""


class SynllmError(Exception):
    """An error the user can fix; ``str(err)`` is a single line naming what is wrong."""


class ConfigError(SynllmError):
    """A configuration value is missing or invalid; the message names the field."""


class DataError(SynllmError):
    """A dataset file is missing, unreadable or does not match its card."""
