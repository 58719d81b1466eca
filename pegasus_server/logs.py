"""The process's log sinks (loguru): standard error and, optionally, a rotated file, at one
level that ``set_level`` changes at run time (remote command ``reset-log-start-level``).

Must not import gevent.
"""
from __future__ import annotations

import sys
from typing import Optional

from loguru import logger

LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
# upstream's names (LOG_LEVEL_DEBUG ...) -> ours
UPSTREAM_LEVELS = {"LOG_LEVEL_DEBUG": "DEBUG", "LOG_LEVEL_INFO": "INFO",
                   "LOG_LEVEL_WARNING": "WARNING", "LOG_LEVEL_ERROR": "ERROR",
                   "LOG_LEVEL_FATAL": "CRITICAL"}

_state = {"level": "INFO", "file": None}


def setup(level: str, log_file: Optional[str] = None) -> None:
    _state["file"] = log_file
    set_level(level)


def set_level(level: str) -> str:
    """Re-open the sinks at ``level`` (ours or upstream's name); returns the level set."""
    name = UPSTREAM_LEVELS.get(level.upper(), level.upper())
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: one of {', '.join(LEVELS)} or "
                         f"{', '.join(UPSTREAM_LEVELS)}")
    logger.remove()
    logger.add(sys.stderr, level=name)
    if _state["file"]:
        logger.add(_state["file"], level=name, rotation="64 MB", retention=4)
    _state["level"] = name
    return name


def level() -> str:
    return _state["level"]
