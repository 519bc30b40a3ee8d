"""Recordings: record kernel events to a file; report, replay and export it offline.

format.py  file layout (docs/recording.md)    writer.py / reader.py  blocks in and out
meta.py    JSON forms of Readings, mounts, files   recorder.py  the live loop (needs root)
replay.py  seed + events -> Readings -> aggregate -> Model
timeline.py / report.py / perfetto.py / source.py  the faces on a recording
cli.py     click commands (registered by erofs_top/cli.py)
"""
