"""The Advice view (key 4): `erofs-top advise`'s actions on the Model of the real
refresh (fixture_advice.py: a scripted probe source, static resolvers of four
file-backed mounts, two of them on images with fingerprints)."""
from __future__ import annotations

import pytest

from erofs_top.advise import advise
from erofs_top.tui import advice as advice_view
from erofs_top.tui.app import HelpScreen, ErofsTopApp
from erofs_top.tui.detail import DetailScreen, shell_lines

from fixture_advice import AdviceNode, advice_collector, image_file, mountpoint
from tui_fixtures import model as fixed_model, run_async, screen_text

pytestmark = pytest.mark.timeout(60)

ADVICE = 3          # index of the view; key "4"
INODE_SHARE_KEY = ("inode_share", "")
REBUILD_KEY = ("rebuild", "00000004:feedface")


async def on_advice(app, pilot, node, *scenarios, key="4"):
    """Refresh the real collector once per scenario, ingest, switch to Advice."""
    col = advice_collector(node)
    for scenario in scenarios:
        node.set_scenario(scenario)
        app.ingest(col.refresh())
    await pilot.press(key)
    await pilot.pause()
    return col


def test_the_fixture_node_gets_both_kinds_of_action_from_the_real_refresh():
    node = AdviceNode()
    acts = advise(advice_collector(node).refresh())
    # 256 pages of libapp.so cached twice on fingerprinted images; 128 pages of
    # libbase.so twice on images without (docs of fixture_advice.py)
    assert [(a.kind, a.saves_bytes) for a in acts] == [("inode_share", 1 << 20),
                                                       ("rebuild", 512 << 10)]
    assert acts[0].mounts == [mountpoint(1), mountpoint(2)]
    # image 3's copy stays cached and has no fingerprints: rebuilt too
    assert acts[1].mounts == [mountpoint(4), mountpoint(3)] and acts[1].image == image_file(4)
    assert [c.split()[-1].rstrip(">") for c in acts[1].commands] == [image_file(4), image_file(3)]


@run_async
async def test_key_4_lists_every_action_ranked_with_saving_mounts_and_commands():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(250, 30)) as pilot:
        await on_advice(app, pilot, AdviceNode(), "actions")
        assert app.active_view == ADVICE and app.table().has_focus
        t = app.table()
        assert t.order == [INODE_SHARE_KEY, REBUILD_KEY]
        assert [t.rows[k].rank for k in t.order] == [1, 2]
        text = screen_text(app)
        lines = text.splitlines()
        share = next(line for line in lines if line.startswith("  1 inode_share "))
        assert "1.0 MiB" in share and f"{mountpoint(1)}, {mountpoint(2)}" in share
        assert (f"mount -t erofs -o ro,inode_share,domain_id=<domain> {image_file(1)} "
                f"{mountpoint(1)} ; mount -t erofs") in share
        rebuild = next(line for line in lines if line.startswith("  2 rebuild "))
        assert "512 KiB" in rebuild and mountpoint(4) in rebuild
        assert (f"mkfs.erofs --xattr-inode-digest=trusted.erofs.fingerprint NEW.erofs "
                f"<the tree of {image_file(4)}>") in rebuild
        assert "2 action(s)" in text            # the totals row counts, it does not sum
        assert "4 Advice" in text               # the view bar


@pytest.mark.parametrize("keys", [["4"], ["tab", "tab", "tab"], ["shift+tab"], ["3", "tab"]])
@run_async
async def test_view_switches_to_advice_by_key(keys):
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(100, 24)) as pilot:
        await on_advice(app, pilot, AdviceNode(), "actions", key="1")
        for k in keys:
            await pilot.press(k)
        assert app.active_view == ADVICE
        assert "ACTION" in screen_text(app) and "COMMANDS" in screen_text(app)
        await pilot.press("1")
        assert app.active_view == 0


@run_async
async def test_80x24_shows_saving_and_mounts_uncut():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_advice(app, pilot, AdviceNode(), "actions")
        t = app.table()
        assert t.hidden_columns == []
        text = screen_text(app)
        assert all(len(line) <= 80 for line in text.splitlines())
        for key in t.order:
            for col, width in t.layout_columns:
                if not col.flex:
                    assert col.text(key, t.rows[key]) in text
        assert "1.0 MiB" in text and "512 KiB" in text


@pytest.mark.parametrize("scenario, line", [
    ("unique", "Nothing to advise: no duplicate content resident"),
    ("sharing", "Nothing to advise: every mount already shares (inode_share), saving 1.0 MiB"),
])
@run_async
async def test_empty_state_says_why_in_one_line(scenario, line):
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(120, 24)) as pilot:
        await on_advice(app, pilot, AdviceNode(), scenario)
        assert app.table().order == []
        assert line in screen_text(app)
        assert "advise: mount" not in screen_text(app)     # nor a header line
        assert "advise: rebuild" not in screen_text(app)


@run_async
async def test_the_view_follows_each_refresh():
    node = AdviceNode()
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(120, 24)) as pilot:
        col = await on_advice(app, pilot, node, "actions")
        await pilot.press("down")
        assert app.table().cursor_key == REBUILD_KEY
        node.set_scenario("unique")
        app.ingest(col.refresh())
        await pilot.pause()
        assert app.table().order == []
        assert "Nothing to advise: no duplicate content" in screen_text(app)
        node.set_scenario("sharing")            # only mounts 1 and 2, sharing: no rebuild
        app.ingest(col.refresh())
        await pilot.pause()
        assert "Nothing to advise: every mount already shares" in screen_text(app)
        node.set_scenario("actions")
        app.ingest(col.refresh())
        await pilot.pause()
        assert app.table().order == [INODE_SHARE_KEY, REBUILD_KEY]


@run_async
async def test_the_hidden_advice_view_is_rendered_when_shown():
    node = AdviceNode()
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(120, 24)) as pilot:
        col = await on_advice(app, pilot, node, "unique", key="1")
        node.set_scenario("actions")
        app.ingest(col.refresh())               # while the Containers view is shown
        await pilot.press("4")
        await pilot.pause()
        assert app.table().order == [INODE_SHARE_KEY, REBUILD_KEY]
        assert "Nothing to advise" not in screen_text(app)


@run_async
async def test_sort_filter_and_the_header_line():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(120, 24)) as pilot:
        await on_advice(app, pilot, AdviceNode(), "actions")
        # the header's one-line summary is the view's first row
        assert "advise: mount with inode_share (2 mount(s)) saves 1.0 MiB" in screen_text(app)
        await pilot.press("r")                  # reverse the ranking
        assert app.table().order == [REBUILD_KEY, INODE_SHARE_KEY]
        await pilot.press("slash", *"ctr-4", "enter")
        assert app.table().order == [REBUILD_KEY]
        assert "filter 'ctr-4'" in screen_text(app)


def shown_commands(text: str) -> list[str]:
    """The commands of a detail pane as a shell reads them (blank-line separated
    blocks after the heading; backslash-newline removed)."""
    blocks, cur = [], []
    for line in text.split("Commands (as root")[1].splitlines()[1:]:
        line = line[1:].rstrip()                # the pane's padding
        if line.startswith("The saving is"):
            break
        if line:
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    return ["\n".join(b).replace("\\\n", "") for b in blocks]


@run_async
async def test_enter_shows_why_and_the_commands_in_full():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 40)) as pilot:
        col = await on_advice(app, pilot, AdviceNode(), "actions")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        text = screen_text(app)
        assert "Advice #1: inode_share, saves 1.0 MiB of page cache now" in text
        assert "mount them in one domain" in text
        assert f"{mountpoint(1)}  0:41 file, inode_share off, fingerprints yes" in text
        assert "resident 1.0 MiB, duplicate 1.0 MiB" in text
        # every command in full, split for 80 columns with shell line continuations
        assert all(len(line) <= 80 for line in text.splitlines())
        assert shown_commands(text) == [
            f"mount -t erofs -o ro,inode_share,domain_id=<domain> {image_file(n)} {mountpoint(n)}"
            for n in (1, 2)] == advise(col.last_model)[0].commands
        await pilot.press("escape")
        await pilot.press("down", "enter")
        await pilot.pause()
        text = screen_text(app)
        assert "Advice #2: rebuild, saves 512 KiB of page cache now" in text
        assert "2 image(s) without fingerprints" in text and image_file(4) in text


@run_async
async def test_detail_of_an_action_no_longer_advised_says_so():
    node = AdviceNode()
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(100, 30)) as pilot:
        col = await on_advice(app, pilot, node, "actions")
        await pilot.press("enter")
        node.set_scenario("unique")
        app.ingest(col.refresh())
        await pilot.pause()
        assert "This action is no longer advised" in screen_text(app)


@pytest.mark.parametrize("width", [8, 12, 20, 40, 79])
def test_shell_lines_read_back_as_the_same_command(width):
    cmd = ("mount -t erofs -o ro,inode_share,domain_id=<domain> "
           "/var/lib/containerd/io.containerd.snapshotter.v1.erofs/snapshots/123/layer.erofs "
           "/var/lib/containerd/io.containerd.snapshotter.v1.erofs/snapshots/123/fs")
    lines = shell_lines(cmd, width)
    assert len(lines) > 1 and all(len(line) <= width for line in lines)
    # what a shell does with backslash-newline: it removes both
    assert "\n".join(lines).replace("\\\n", "") == cmd
    assert shell_lines("ls /", width) == ["ls /"]


@run_async
async def test_help_lists_the_advice_view():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.ingest(fixed_model(0))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "4 Advice" in text and "`erofs-top advise`, ranked" in text


def test_advice_sort_keys_are_accepted_by_top():
    from erofs_top.tui.app import sort_keys
    assert {"rank", "saves"} <= set(sort_keys())
    assert advice_view.SORT_KEYS[0] == "rank"


@run_async
async def test_mounts_in_two_domains_get_the_domain_action():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await on_advice(app, pilot, AdviceNode(), "domains")
        # two shared inodes of libapp.so: all 256 pages and the first 128; one
        # domain would hold those 128 pages (512 KiB) once
        t = app.table()
        assert t.order == [("domain", "")]
        row = next(line for line in screen_text(app).splitlines()
                   if line.startswith("  1 domain "))
        assert "512 KiB" in row and mountpoint(2) in row
        await pilot.press("enter")
        await pilot.pause()
        text = screen_text(app)
        assert "Advice #1: domain, saves 512 KiB of page cache now" in text
        assert f"({mountpoint(1)})" in text             # the domain to move into
        assert shown_commands(text) == [
            f"umount {mountpoint(2)} && mount -t erofs -o ro,inode_share,domain_id=<domain> "
            f"{image_file(2)} {mountpoint(2)}"]
