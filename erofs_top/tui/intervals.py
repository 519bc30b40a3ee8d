"""The live view's refresh intervals (no Textual import: the CLI reads them at start)."""
INTERVALS_S = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)    # what + and - step through
DEFAULT_INTERVAL_S = 2.0
