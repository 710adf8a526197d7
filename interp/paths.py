"""Where the toolkit keeps files it builds once and reuses: converted weights, tokenizers.

A bottom module (it imports nothing from ``interp``) so that model loading (`interp.models`) and the tiny
tokenizers (`interp.tiny_tokenizers`) can both reach the cache without importing each other. Nothing here
names a path inside the repository: the cache is per user, ``$INTERP_CACHE_DIR`` or ``~/.cache/interp``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Directory for converted weights and tokenizers (``$INTERP_CACHE_DIR`` or ``~/.cache/interp``)."""
    root = os.environ.get("INTERP_CACHE_DIR") or Path.home() / ".cache" / "interp"
    return Path(root)


__all__ = ["cache_dir"]
