"""CLI surface without root: help texts, human tables, JSON emission."""
import json

from click.testing import CliRunner

from erofs_top.cli import main, render_text
from erofs_top.model import Container, File, Health, Model, Mount, Totals

MiB = 1 << 20


def model():
    return Model(tier="tracepoint", started_at=100.0, ended_at=110.0, page_size=4096,
                 kernel="6.18", containers=[
                     Container(cgroup_id=7, cgroup="/kubepods/pod1/abc", runtime="containerd",
                               resident_bytes=12 * MiB, duplicate_bytes=3 * MiB)],
                 mounts=[Mount(dev="0:40", mountpoint="/run/ctr/rootfs", source="/img/a.erofs",
                               backing="file", resident_bytes=12 * MiB,
                               backing_resident_bytes=MiB)],
                 files=[File(dev="0:40", ino=42, path="/run/ctr/rootfs/lib.so", content_id="",
                             size=20 * MiB, resident_bytes=12 * MiB, duplicate_bytes=3 * MiB,
                             copies=2)],
                 totals=Totals(resident_bytes=12 * MiB, duplicate_bytes=3 * MiB),
                 health=Health(files_total=5, files_cap=200, warnings=["something degraded"]))


def test_every_command_has_help():
    runner = CliRunner()
    res = runner.invoke(main, ["--help"])
    assert res.exit_code == 0
    for name in main.commands:
        r = runner.invoke(main, [name, "--help"])
        assert r.exit_code == 0, (name, r.output)
        assert len(r.output.splitlines()) > 3, name


def test_human_table_has_units_and_warnings():
    text = render_text(model())
    assert "12.0 MiB" in text and "3.0 MiB" in text and "1.0 MiB" in text
    assert "/kubepods/pod1/abc" in text and "containerd" in text
    assert "warning: something degraded" in text
    assert "4 more files" in text          # never a silent cut


def test_json_document_is_the_model():
    from erofs_top.cli import emit
    runner = CliRunner()
    m = model()

    @main.command("_emit_test")
    def _emit():
        emit(m, True)
    try:
        out = runner.invoke(main, ["_emit_test"]).output
    finally:
        main.commands.pop("_emit_test")
    assert Model.from_dict(json.loads(out)) == m


def test_once_usage_error_is_exit_2():
    r = CliRunner().invoke(main, ["once", "--duration", "-1"])
    assert r.exit_code == 2


def test_collector_error_keeps_its_hint_apart():
    from erofs_top.errors import CollectorError
    e = CollectorError("tracefs is not mounted", " (or use --no-bpf)")
    assert str(e) == "tracefs is not mounted (or use --no-bpf)"
    assert (e.reason, e.hint) == ("tracefs is not mounted", " (or use --no-bpf)")
    assert str(CollectorError("plain")) == "plain"


def test_record_drops_the_no_bpf_hint(monkeypatch, tmp_path):
    """The live faces offer --no-bpf; a recording cannot run without BPF."""
    from erofs_top.kernel import host
    from erofs_top.record.cli import record_command
    monkeypatch.setattr(host, "bpf_problem", lambda: ("tracefs is not mounted: mount it",
                                                      " (or use --no-bpf)"))
    res = CliRunner().invoke(record_command, ["-o", str(tmp_path / "x.rec"), "--duration", "1"])
    assert res.exit_code == 1
    assert res.output.strip() == ("erofs-top: tracefs is not mounted: mount it "
                                  "(recording needs the tracepoint tier)")
