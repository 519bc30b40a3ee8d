"""The live terminal UI (Textual): `erofs-top top`, `demo` and `replay` run it.

Entry points: ``erofs_top.tui.app.run_app(source, ...)`` and the click command
``erofs_top.tui.cli.top_command``.  See docs/tui.md.
"""
