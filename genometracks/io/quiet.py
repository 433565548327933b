"""Keep third-party noise out of a job's output: Lightning's advertising tips ("💡 Tip: ... litlogger")
and deprecation warnings about library internals, which a user of genometracks can do nothing about.
Our own warnings and Lightning's progress, model summary and real warnings stay.
"""

from __future__ import annotations

import logging
import warnings

_TIP_WORDS = ("litlogger", "💡 Tip", "LitLogger")
# deprecation notices raised inside third-party code (not by anything genometracks passes them)
_DEPRECATED_MESSAGES = (r".*is deprecated.*", r".*will be removed in.*", r".*deprecated and will be.*")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(word in message for word in _TIP_WORDS)


def quiet_third_parties() -> None:
    """Install the filters (idempotent): on Lightning's loggers and the warnings module."""
    for name in (
        "pytorch_lightning",
        "lightning",
        "lightning_fabric",
        "lightning.pytorch",
        "pytorch_lightning.utilities.rank_zero",
        "lightning_fabric.utilities.rank_zero",
    ):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in log.filters):
            log.addFilter(_DropTips())
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    for message in _DEPRECATED_MESSAGES:
        warnings.filterwarnings("ignore", message=message)
