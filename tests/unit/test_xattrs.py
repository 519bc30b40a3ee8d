"""xattrs.py: an inode's xattrs read from the image bytes (the on-disk
layout of fs/erofs/xattr.c), on hand-built images: inline and shared
entries, short and long name prefixes, padding, and the layouts it leaves
to the kernel (XattrsUnreadable)."""
from __future__ import annotations

import struct

import pytest

from erofs_top.resolve.superblock import (COMPAT_PLAIN_XATTR_PFX, COMPAT_SHARED_EA_IN_METABOX,
                                          FLAT_PLAIN, DiskInode, Superblock)
from erofs_top.resolve.xattrs import (XattrsUnreadable, find_xattr, inline_value, long_prefixes,
                                     xattr_name)

BS = 4096
INODE_AT = 1 * BS + 10 * 32         # meta_blkaddr 1, nid 10
SHARED_AT = 2 * BS                  # xattr_blkaddr 2
TABLE_AT = 3 * BS                   # the long prefix table (xattr_prefix_start = TABLE_AT / 4)


def _sb(**kw) -> Superblock:
    base = dict(feature_compat=COMPAT_PLAIN_XATTR_PFX, feature_incompat=0, blkszbits=12,
                sb_extslots=0, root_nid=36, inos=10, blocks=1000, meta_blkaddr=1,
                xattr_blkaddr=2, uuid=b"\0" * 16, volume_name="", checksum=0, packed_nid=0,
                metabox_nid=0, xattr_prefix_count=0, ishare_xattr_prefix_id=0,
                xattr_prefix_start=TABLE_AT // 4)
    base.update(kw)
    return Superblock(**base)


def _entry(index: int, suffix: bytes, value: bytes) -> bytes:
    raw = struct.pack("<BBH", len(suffix), index, len(value)) + suffix + value
    return raw + b"\0" * (-len(raw) % 4)


def _image(inline: list[bytes], shared_ids: list[int], shared: dict[int, bytes],
           table: list[bytes] = ()) -> tuple[bytearray, DiskInode]:
    """An image with inode nid 10 (compact) holding these entries."""
    img = bytearray(4 * BS)
    area = struct.pack("<IB7x", 0, len(shared_ids)) + struct.pack(f"<{len(shared_ids)}I",
                                                                   *shared_ids) + b"".join(inline)
    icount = 1 + (len(area) - 12) // 4
    rec = DiskInode(nid=10, extended=False, layout=FLAT_PLAIN, mode=0o100644, size=0,
                    xattr_icount=icount)
    img[INODE_AT + 32:INODE_AT + 32 + len(area)] = area
    for xid, raw in shared.items():
        img[SHARED_AT + 4 * xid:SHARED_AT + 4 * xid + len(raw)] = raw
    pos = TABLE_AT
    for item in table:
        pos = -(-pos // 4) * 4
        img[pos:pos + 2 + len(item)] = struct.pack("<H", len(item)) + item
        pos += 2 + len(item)
    return img, rec


def _reader(img: bytearray):
    return lambda offset, length: bytes(img[offset:offset + length])


def test_inline_and_shared_entries_with_short_prefixes():
    fp = b"sha256:" + bytes(range(32))
    img, rec = _image([_entry(1, b"a", b"xyz"), _entry(4, b"erofs.fingerprint", fp)],
                      [3], {3: _entry(6, b"selinux", b"ctx\0")})
    read = _reader(img)
    sb = _sb()
    assert find_xattr(sb, rec, INODE_AT, read, b"trusted.erofs.fingerprint", []) == fp
    assert find_xattr(sb, rec, INODE_AT, read, b"user.a", []) == b"xyz"       # padded entry
    assert find_xattr(sb, rec, INODE_AT, read, b"security.selinux", []) == b"ctx\0"  # shared
    assert find_xattr(sb, rec, INODE_AT, read, b"user.b", []) is None
    assert find_xattr(sb, rec, INODE_AT, read, b"trusted.erofs.fingerprin", []) is None
    no_xattrs = DiskInode(nid=10, extended=False, layout=FLAT_PLAIN, mode=0o100644, size=0)
    assert find_xattr(sb, no_xattrs, INODE_AT, read, b"user.a", []) is None


def test_long_prefix_as_mkfs_xattr_inode_digest_writes_it():
    """mkfs.erofs 1.9.4 --xattr-inode-digest=trusted.erofs.fingerprint (checked
    on a real image): table item b"\\x04erofs.fingerprint", the entry name
    index 0x80 with an empty suffix, value "sha256:" + 32 raw bytes."""
    fp = b"sha256:" + bytes(range(100, 132))
    img, rec = _image([_entry(0x81, b"", fp), _entry(0x80, b".v2", b"other")], [], {},
                      table=[b"\x01xy", b"\x04erofs.fingerprint"])
    read = _reader(img)
    sb = _sb(xattr_prefix_count=2)
    prefixes = long_prefixes(sb, read)
    assert prefixes == [b"user.xy", b"trusted.erofs.fingerprint"]     # item 2 4-aligned
    assert find_xattr(sb, rec, INODE_AT, read, b"trusted.erofs.fingerprint", prefixes) == fp
    assert find_xattr(sb, rec, INODE_AT, read, b"user.xy.v2", prefixes) == b"other"
    with pytest.raises(XattrsUnreadable):       # an entry naming a prefix the table lacks
        find_xattr(sb, rec, INODE_AT, read, b"user.none", prefixes[:1])


def test_layouts_left_to_the_kernel():
    img, rec = _image([_entry(1, b"a", b"1")], [], {})
    read = _reader(img)
    # the prefix table in the packed inode (no plain_xattr_pfx): not read here
    with pytest.raises(XattrsUnreadable):
        long_prefixes(_sb(feature_compat=0, packed_nid=99, xattr_prefix_count=1), read)
    assert long_prefixes(_sb(feature_compat=0, packed_nid=0), read) == []
    with pytest.raises(XattrsUnreadable):
        find_xattr(_sb(feature_compat=COMPAT_SHARED_EA_IN_METABOX), rec, INODE_AT, read,
                   b"user.a", [])


def test_the_name_as_an_image_spells_it():
    """xattr_name: the (index, suffix) pairs that mean a name in an image
    (short prefixes, the long prefix table's entries); none where no prefix
    of the image starts the name (fingerprint() then reads nothing)."""
    table = [b"user.xy", b"trusted.erofs.fingerprint", None, b"trusted.erofs."]
    want = xattr_name(b"trusted.erofs.fingerprint", table)
    assert want.codes == {(4, b"erofs.fingerprint"), (0x81, b""), (0x83, b"fingerprint")}
    assert want.prefix_count == 4
    assert not xattr_name(b"vendor.fingerprint", table).codes
    fp = b"sha256:" + bytes(range(32))
    img, rec = _image([_entry(0x80, b".a", b"1"), _entry(0x83, b"fingerprint", fp)], [5], {})
    area = bytes(img[INODE_AT + 32:INODE_AT + 32 + rec.xattr_size])
    assert inline_value(area, want) == (fp, (5,))
    assert inline_value(area, xattr_name(b"user.xy.b", table)) == (None, (5,))
