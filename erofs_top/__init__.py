"""erofs-top: EROFS page cache per container, duplicates, and page-cache sharing savings."""
__version__ = "0.1.0"
