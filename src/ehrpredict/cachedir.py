"""Where ehrpredict keeps what it can recompute (embeddings, file digests): ``$EHRPREDICT_CACHE``,
else ``~/.cache/ehrpredict``. Deleting it costs time, never results."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EHRPREDICT_CACHE"


def cache_root() -> Path:
    """``$EHRPREDICT_CACHE`` when set, else ``~/.cache/ehrpredict``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "ehrpredict"
