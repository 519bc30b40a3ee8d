"""`erofs-top advise`: what to change on this node to save page cache, ranked
by what each change saves now.  Pure: actions from a Model (the aggregator's
savings, docs/sharing.md); the command only fetches the Model and prints.

Actions:
  inode_share  remount the stock mounts whose images carry fingerprints with
               ``inode_share,domain_id=<one domain>``: saves the Model's
               ``potential_savings_now_bytes`` (stage a)
  rebuild      rebuild the stock images without fingerprints that hold
               duplicates with ``mkfs.erofs --xattr-inode-digest=
               trusted.erofs.fingerprint`` and mount them in that domain:
               saves their copies' part of the potential (stage b)
  domain       move inode_share mounts whose shared inodes hold the same
               content as those of other inode_share mounts into those
               mounts' domain: saves ``potential_savings_domains_bytes``
               (stage c).  erofs-top never reads domain_ids (secrets); it sees
               the kernel keep two shared inodes for one content, which only
               different domains do.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import click

from .model import Model
from .params import DAY_S, seconds
from .units import fmt_bytes

DOMAIN_PLACEHOLDER = "<domain>"
FINGERPRINT_XATTR = "trusted.erofs.fingerprint"


@dataclass
class Action:
    kind: str                       # inode_share | rebuild
    saves_bytes: int                # page cache this action saves now (charged)
    mounts: list[str]               # mount points it touches
    image: str = ""                 # rebuild: the image file (or source) saving most
    image_id: str = ""
    # rebuild: image id -> the part of saves_bytes its copies give up (every
    # image the action rebuilds; 0 for one whose copies stay cached)
    image_savings_bytes: dict[str, int] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)   # what an operator runs
    why: str = ""


def advise(model: Model) -> list[Action]:
    """Ranked actions, largest saving first; none when nothing would save."""
    actions: list[Action] = []
    # Every stock mount of a fingerprinted image that holds duplicate content: the
    # copy that keeps a page saves nothing itself (its potential_savings_now_bytes is
    # 0) but must be in the domain too, or the others have nothing to share with.
    ready = [m for m in model.mounts if not m.inode_share and m.ishare_xattrs
             and (m.potential_savings_now_bytes > 0 or m.duplicate_bytes > 0)]
    if any(m.potential_savings_now_bytes > 0 for m in ready) \
            and model.totals.potential_savings_now_bytes > 0:
        opts = f"ro,inode_share,domain_id={DOMAIN_PLACEHOLDER}"
        actions.append(Action(
            kind="inode_share", saves_bytes=model.totals.potential_savings_now_bytes,
            mounts=[m.mountpoint for m in ready],
            commands=[f"mount -t erofs -o {opts} {m.backing_file or m.source} {m.mountpoint}"
                      for m in ready],
            why=f"{len(ready)} stock mount(s) hold the same content and their images carry "
                f"fingerprints: mount them in one domain (pick one secret {DOMAIN_PLACEHOLDER} "
                f"for the images you trust together)"))
    actions += _domain_actions(model) + _rebuild_actions(model)
    actions.sort(key=lambda a: (-a.saves_bytes, a.kind, a.image))
    return actions


def _rebuild_actions(model: Model) -> list[Action]:
    """One action for the stock images without fingerprints that hold
    duplicates.  A copy that would go may be the duplicate of one that stays
    cached on another image without fingerprints (which then saves nothing
    itself, or keeps some contents and gives up others): nothing is shared
    until both are rebuilt.  The Model has no per-content groups to tell
    which image needs which, so they are one action: doing what it says
    saves what it promises (their copies' part of the potential)."""
    by_image: dict[str, list] = {}
    for m in model.mounts:
        if not m.ishare_xattrs and not m.inode_share and (
                m.potential_savings_bytes > 0 or m.duplicate_bytes > 0):
            by_image.setdefault(m.image_id or m.dev, []).append(m)
    savings = {img: sum(m.potential_savings_bytes for m in ms) for img, ms in by_image.items()}
    if not any(v > 0 for v in savings.values()):
        return []
    order = sorted(by_image, key=lambda img: (-savings[img], img))
    srcs = [by_image[img][0].backing_file or by_image[img][0].source for img in order]
    why = (f"{len(order)} image(s) without fingerprints hold duplicate content: the kernel "
           f"cannot share their files until they are rebuilt with "
           f"mkfs.erofs --xattr-inode-digest and mounted with inode_share in one domain")
    if len(order) > 1:
        why += " (all of them: the copies that stay cached may be on any of them)"
    return [Action(
        kind="rebuild", saves_bytes=sum(savings.values()),
        mounts=[m.mountpoint for img in order for m in by_image[img]],
        image=srcs[0], image_id=order[0],
        image_savings_bytes={img: savings[img] for img in order},
        commands=[f"mkfs.erofs --xattr-inode-digest={FINGERPRINT_XATTR} NEW.erofs "
                  f"<the tree of {src}>" for src in srcs],
        why=why)]


def _domain_actions(model: Model) -> list[Action]:
    movers = [m for m in model.mounts if m.inode_share and m.potential_savings_domains_bytes > 0]
    if not movers or model.totals.potential_savings_domains_bytes <= 0:
        return []
    keepers = [m.mountpoint for m in model.mounts
               if m.inode_share and m.potential_savings_domains_bytes <= 0]
    if not keepers:     # each holds some content first: the largest keeps its domain
        largest = max(movers, key=lambda m: (m.resident_bytes, m.mountpoint))
        movers.remove(largest)
        keepers = [largest.mountpoint]
    target = ", ".join(keepers[:3]) + (" ..." if len(keepers) > 3 else "")
    opts = f"ro,inode_share,domain_id={DOMAIN_PLACEHOLDER}"
    return [Action(
        kind="domain", saves_bytes=model.totals.potential_savings_domains_bytes,
        mounts=[m.mountpoint for m in movers],
        commands=[f"umount {m.mountpoint} && mount -t erofs -o {opts} "
                  f"{m.backing_file or m.source} {m.mountpoint}" for m in movers],
        why=f"{len(movers)} inode_share mount(s) cache content that other inode_share mounts "
            f"({target}) cache too, in another domain: remount them with that domain's "
            f"{DOMAIN_PLACEHOLDER}")]


def nothing_to_advise(model: Model) -> str:
    """Why advise(model) is empty: one short phrase (it fits an 80-column line
    after "Nothing to advise: "), from the Model's own figures."""
    t = model.totals
    if not model.mounts:
        return "no EROFS mounts on this node"
    if t.resident_bytes <= 0:
        return "no EROFS page cache resident yet"
    if t.potential_savings_bytes <= 0 and all(m.inode_share for m in model.mounts):
        return (f"every mount already shares (inode_share), saving "
                f"{fmt_bytes(t.sharing_saved_bytes)}")
    if t.potential_savings_bytes <= 0 and t.duplicate_bytes <= 0:
        return "no duplicate content resident"
    if t.potential_savings_bytes <= 0:
        return (f"{fmt_bytes(t.duplicate_bytes)} duplicate, none of it shareable "
                "(docs/sharing.md)")
    return "no change to a stock mount would save page cache now"


def render(actions: list[Action], model: Model) -> str:
    if not actions:
        return (f"nothing to advise: {nothing_to_advise(model)} (EROFS resident "
                f"{fmt_bytes(model.totals.resident_bytes)}, sharing saves "
                f"{fmt_bytes(model.totals.sharing_saved_bytes)})")
    out = [f"{len(actions)} action(s), largest saving first (page cache charged now; "
           f"tier {model.tier}):"]
    for i, a in enumerate(actions, 1):
        out.append(f"{i}. {a.kind}: saves {fmt_bytes(a.saves_bytes)}: {a.why}")
        out += [f"     {c}" for c in a.commands]
    return "\n".join(out)


def to_json(actions: list[Action], model: Model) -> str:
    return json.dumps({"schema": 1, "tier": model.tier, "ended_at": model.ended_at,
                       "actions": [asdict(a) for a in actions]}, indent=2)


@click.command("advise")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: {schema, tier, "
                                                       "ended_at, actions[]} (docs/sharing.md).")
@click.option("--duration", type=seconds(max=DAY_S), default=1.0, show_default=True,
              help="Seconds to watch before advising (live tiers).")
@click.option("--no-bpf", is_flag=True, help="Advise from ground truth (snapshot tier).")
def advise_command(as_json: bool, duration: float, no_bpf: bool) -> None:
    """Ranked changes that would save EROFS page cache on this node now, with
    the MiB each saves and the commands to make them: which mounts to mount
    with inode_share (and one domain_id for them), which inode_share mounts
    to move into another mount's domain, which images to rebuild with
    fingerprints.  Savings are in page cache the kernel charges (EROFS
    pages, compressed-data cache, image-file cache): docs/sharing.md."""
    import time

    from .errors import EXIT_INTERRUPTED, fail
    from .tiers import open_or_fail
    col = open_or_fail(no_bpf)
    try:
        col.refresh()
        time.sleep(duration)
        model = col.refresh()
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    finally:
        col.close()
    actions = advise(model)
    click.echo(to_json(actions, model) if as_json else render(actions, model))
