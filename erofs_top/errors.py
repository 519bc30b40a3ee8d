"""The error every face reports as one line (a leaf module: imports nothing of erofs-top)."""
from __future__ import annotations


class CollectorError(Exception):
    """A one-line, user-facing reason why collection cannot start or go on."""
