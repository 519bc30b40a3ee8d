"""exporter/encode.py LineCache: the /metrics body made from kept header and
sample-line prefixes is byte for byte the one prometheus-client's encoder
makes, for every format a scrape can ask for, refresh after refresh (series
appearing and going, values changing, names with quotes, backslashes,
newlines and non-ASCII), and for what it does not take apart (timestamps,
exemplars, counters' _created samples)."""
from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from erofs_top.exporter.encode import Labels, LineCache
from erofs_top.exporter.metrics import ExporterStatus, FamilyBuilder, ModelMetrics
from erofs_top.model import TIER_TRACEPOINT, Container, Health, Model, Mount, Totals

ACCEPTS = ["", "text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0",
           "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
           "application/openmetrics-text; version=1.0.0; escaping=values",
           "text/plain;version=1.0.0;escaping=allow-utf-8"]
ODD = ['', 'a"b', 'back\\slash', 'new\nline', 'ünï ✓', 'x{y}=z,', '\\"\n']


def _model(rng: random.Random, n: int) -> Model:
    containers = []
    for i in rng.sample(range(3 * n), n):        # series come and go between Models
        odd = ODD[i % len(ODD)]
        containers.append(Container(
            cgroup_id=1000 + i, cgroup=f"/kubepods/pod{i}/{odd}ctr", runtime="containerd",
            container_id=f"{i:064x}", pod_uid=f"uid-{i}{odd}",
            pod_name=f"pod{odd}{i}" if i % 3 else "", pod_namespace="ns" + odd,
            container_name=f"c{i}{odd}",
            resident_bytes=rng.choice([0, 4096, rng.randrange(1 << 40), 10 ** 7, 123456789]),
            duplicate_bytes=rng.randrange(1 << 20) * 4096, fair_bytes=rng.randrange(1 << 30),
            inserted_bytes=rng.randrange(1 << 35), evicted_bytes=rng.randrange(1 << 30),
            readahead_bytes=rng.randrange(1 << 30), read_folio_count=rng.randrange(1000),
            files_count=rng.randrange(100)))
    mounts = [Mount(dev=f"0:{40 + j}", mountpoint=f"/m{j}", source=f"/img/{j}", backing="file",
                    backing_file=f"/img/{j}", image_id=f"img{j}", uuid=f"u{j}",
                    volume_name=ODD[j % len(ODD)], resident_bytes=rng.randrange(1 << 40),
                    duplicate_bytes=rng.randrange(1 << 30), containers_count=n)
              for j in range(rng.randrange(1, 5))]
    return Model(tier=TIER_TRACEPOINT, started_at=1.0, ended_at=2.0, page_size=4096,
                 containers=containers, mounts=mounts, files=[], kernel="6.18.0",
                 health=Health(probes_attached=True),
                 totals=Totals(resident_bytes=sum(c.resident_bytes for c in containers)))


@pytest.mark.parametrize("accept", ACCEPTS)
def test_bodies_equal_the_encoders_refresh_after_refresh(accept):
    rng = random.Random(accept)
    encoder, _ = choose_encoder(accept)
    cached = LineCache(encoder)
    builder, col = FamilyBuilder(), ModelMetrics()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(col)
    for step in range(8):
        col.publish(builder.build(_model(rng, rng.randrange(1, 40)), ExporterStatus()))
        want = encoder(reg)
        assert cached(reg) == want, (accept, step)
    assert cached.prefixes      # the sample lines were taken apart, not all encoded whole


class _Odd:
    """Samples LineCache must hand to the encoder whole."""

    def __init__(self):
        self.n, self.x = 0, 0.0

    def collect(self):
        c = CounterMetricFamily("odd_created_things", "with _created", labels=["k"])
        c.add_metric(["a"], self.n, created=1234.5)
        g = GaugeMetricFamily("odd_stamped", "with a timestamp", labels=["k"])
        # the same series without a timestamp, then with one (a kept prefix must not serve)
        g.add_metric(["a"], self.x, timestamp=1700000000.25 if self.n % 2 else None)
        g.add_metric(["b"], float("nan"))
        plain = GaugeMetricFamily("odd_plain", "help with \\ and\nnewline", labels=["k"])
        plain.add_metric(["q\"\n"], float("inf"))
        plain.add_metric(["r"], -0.0)
        return [c, g, plain]


@pytest.mark.parametrize("accept", ACCEPTS)
def test_samples_not_taken_apart_are_encoded_whole(accept):
    rng = random.Random(7)
    odd = _Odd()

    def at(step):
        odd.n, odd.x = step, rng.random()
    _cache_agrees_with_encoder(accept, odd, at, steps=4)


def _cache_agrees_with_encoder(accept, collector, at, steps: int) -> None:
    """LineCache's body equals the encoder's own, step after step (``at``
    moves the collector to the step)."""
    encoder, _ = choose_encoder(accept)
    cached = LineCache(encoder)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    for step in range(steps):
        at(step)
        assert cached(reg) == encoder(reg), (accept, step)


class _Fleeting:
    """Metrics made one at a time as the encoder asks (a generator): each
    one's labels dict dies before the next is made, so CPython hands the
    next dict the same id; a shared dict serves several samples of one."""

    def __init__(self):
        self.step = 0

    def collect(self):
        from prometheus_client.samples import Sample
        for i in range(6):
            g = GaugeMetricFamily(f"fleeting_{i % 2}", "fresh labels", labels=["k"])
            shared = {"k": f"v{self.step}-{i}"}
            g.samples = [Sample(g.name, shared, i), Sample(g.name, {"k": f"w{i}"}, i + 1),
                         Sample(g.name, shared, i + 2)]
            yield g


@pytest.mark.parametrize("accept", ACCEPTS)
def test_labels_dicts_are_told_apart_by_value_not_id(accept):
    """Labels dicts shared by samples (FamilyBuilder's, one per container
    row) and dicts that die mid-body (their ids taken by the next): a kept
    line is found by the labels' values.  (A per-body memo of each dict's
    items by id() without keeping the dict failed here; it did not pay
    either: docs/performance.md.)"""
    fleeting = _Fleeting()
    _cache_agrees_with_encoder(accept, fleeting, lambda step: setattr(fleeting, "step", step),
                               steps=3)


class _Kept:
    """FamilyBuilder's way: one Labels per series kept from step to step and
    shared by the samples of several metrics (gauges, a counter's _total);
    series come and go (a gone one's Labels die, new ones are made)."""

    def __init__(self):
        self.step = 0
        self.kept = {}

    def collect(self):
        from prometheus_client.samples import Sample
        live = [i for i in range(8) if (i + self.step) % 3]
        self.kept = {i: self.kept.get(i) or Labels(k=f"v{i}", odd=ODD[i % len(ODD)])
                     for i in live}
        for name in ("kept_a", "kept_b"):
            g = GaugeMetricFamily(name, "kept labels", labels=["k", "odd"])
            g.samples = [Sample(name, self.kept[i], i * self.step + len(name)) for i in live]
            yield g
        c = CounterMetricFamily("kept_c", "kept labels", labels=["k", "odd"])
        c.samples = [Sample("kept_c_total", self.kept[i], i + self.step) for i in live]
        yield c


@pytest.mark.parametrize("accept", ACCEPTS)
def test_kept_labels_lines_found_by_identity_per_metric(accept):
    """A Labels' line is kept per metric and sample name: the same Labels
    in three metrics gives three lines (a kept line looked up by the dict's
    identity alone gives the first metric's line to all three)."""
    kept = _Kept()
    _cache_agrees_with_encoder(accept, kept, lambda step: setattr(kept, "step", step), steps=5)


def test_labels_are_read_only():
    d = Labels(k="v")
    for change in (lambda: d.__setitem__("k", "w"), lambda: d.update(k="w"),
                   lambda: d.pop("k"), lambda: d.clear(), lambda: d.setdefault("x", "y"),
                   lambda: d.popitem(), lambda: d.__delitem__("k")):
        with pytest.raises(TypeError):
            change()
    assert d == {"k": "v"}


def test_go_float_is_floattogostring():
    """encode.go_float formats ints from their digits: the same text as
    prometheus-client's floatToGoString for every kind of value, ints on
    both sides of each bound (1e6, 2**53, 1e16) included."""
    from prometheus_client.utils import floatToGoString

    from erofs_top.exporter.encode import go_float
    rng = random.Random(11)
    values = [0, 1, -1, 7, 999_999, 1_000_000, 1_000_001, 10 ** 7, 123456789, 4096 * 250_000,
              2 ** 53 - 1, 2 ** 53, 2 ** 53 + 1, -(2 ** 53) + 1, -(2 ** 53), 10 ** 16 - 1,
              10 ** 16, 10 ** 20, -10 ** 7, True, False, 0.5, -0.0, 1e6, 1.5e7,
              float("inf"), float("-inf"), float("nan")]
    for bits in range(1, 70):
        for _ in range(30):
            v = rng.getrandbits(bits)
            values += [v, -v, v * 4096]
    for v in values:
        assert go_float(v) == floatToGoString(v), v


def test_line_end_is_floattogostring():
    """encode.line_end(v) is the end of a sample line, " <value>\\n", as
    prometheus-client writes the value (the same values as go_float's test)."""
    from prometheus_client.utils import floatToGoString

    from erofs_top.exporter.encode import line_end
    rng = random.Random(12)
    values = [0, 1, -1, 999_999, 1_000_000, 1_000_001, 123456789, 2 ** 53 - 1, 2 ** 53,
              -(2 ** 53) + 1, 10 ** 16, 10 ** 20, -10 ** 7, True, False, 0.5, -0.0, 1.5e7,
              float("inf"), float("-inf"), float("nan")]
    values += [rng.getrandbits(bits) * m for bits in range(1, 70) for m in (1, -1, 4096)]
    for v in values:
        assert line_end(v) == f" {floatToGoString(v)}\n", v


def test_columns_samples_are_the_columns():
    """Columns.samples: the Sample list an encoder reads, made from the
    columns at every read (changing it changes nothing; it cannot be set)."""
    from prometheus_client.samples import Sample

    from erofs_top.exporter.encode import Columns
    like = CounterMetricFamily("cols_things", "help", labels=["k"])
    a, b = Labels(k="a"), Labels(k="b")
    fam = Columns(like, "cols_things_total", [a, b], (3, 4.5))
    want = [Sample("cols_things_total", a, 3, None, None),
            Sample("cols_things_total", b, 4.5, None, None)]
    assert fam.samples == want and (fam.name, fam.type) == ("cols_things", "counter")
    fam.samples.append(want[0])
    assert fam.samples == want
    with pytest.raises(AttributeError):
        fam.samples = []
    with pytest.raises(ValueError):
        Columns(like, "cols_things_total", [a], (1, 2))


class _Cols:
    """Columns families over kept Labels, series coming and going, values
    on both sides of go_float's bounds and odd floats; one family's labels
    are plain dicts (encoded whole), one shares another's Labels."""

    def __init__(self):
        self.step = 0
        self.kept = {}

    def collect(self):
        from erofs_top.exporter.encode import Columns
        live = [i for i in range(12) if (i + self.step) % 4]
        self.kept = {i: self.kept.get(i) or Labels(k=f"v{i}", odd=ODD[i % len(ODD)])
                     for i in live}
        labels = [self.kept[i] for i in live]
        rng = random.Random(self.step)      # the same values at every collect of a step
        pool = [0, 7, 999_999, 1_000_000, 4096 * 250_000, 2 ** 53 + 1, -0.0, 0.25,
                float("nan"), float("inf"), True]
        g = GaugeMetricFamily("cols_g", "gauge \\ help\n", labels=["k", "odd"])
        yield Columns(g, "cols_g", labels, [rng.choice(pool) for _ in labels])
        c = CounterMetricFamily("cols_c", "counter", labels=["k", "odd"])
        yield Columns(c, "cols_c_total", labels, [rng.randrange(1 << 45) for _ in labels])
        plain = GaugeMetricFamily("cols_plain", "plain dicts", labels=["k"])
        yield Columns(plain, "cols_plain", [{"k": f"p{i}"} for i in live], list(live))


@pytest.mark.parametrize("accept", ACCEPTS)
def test_columns_bodies_equal_the_encoders(accept):
    """A Columns family's lines, from kept prefixes and its values, are the
    encoder's; a family of plain dicts is handed to the encoder whole."""
    cols = _Cols()
    encoder, _ = choose_encoder(accept)
    cached = LineCache(encoder)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(cols)
    for step in range(6):
        cols.step = step
        got = cached(reg)
        assert got == encoder(reg), (accept, step)
        assert cached.encoded_whole == 1, (accept, step)       # cols_plain only


@pytest.mark.parametrize("accept", ACCEPTS)
def test_builder_bodies_taken_apart_and_gzip_chunks(accept):
    """FamilyBuilder's families are all taken apart (none encoded whole),
    and gzip_chunks of the body's pieces decompresses to the body."""
    import gzip

    from erofs_top.exporter.encode import gzip_chunks
    rng = random.Random(accept + "gz")
    encoder, _ = choose_encoder(accept)
    cached = LineCache(encoder)
    builder, col = FamilyBuilder(), ModelMetrics()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(col)
    for step in range(5):       # step 0: no containers (families with no samples)
        n = rng.randrange(1, 30) if step else 0
        col.publish(builder.build(_model(rng, n), ExporterStatus()))
        packed = gzip_chunks(cached.chunks(reg), 1)
        assert cached.encoded_whole == 0, (accept, step)
        assert gzip.decompress(packed) == encoder(reg), (accept, step)


def test_kept_labels_lines_kept_once_and_shared_across_formats():
    """A Labels' line is kept by identity only (not also in ``prefixes`` by its
    values: a tuple of its pairs per series), and the LineCaches of text and
    OpenMetrics keep one str for a line that is the same in both (shared_line);
    a new Labels equal to a dead one (FamilyBuilder's cache started anew)
    still gives the encoder's body."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as om_latest
    rng = random.Random(21)
    builder, col = FamilyBuilder(), ModelMetrics()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(col)
    text, om = LineCache(generate_latest), LineCache(om_latest)
    model = _model(rng, 25)
    for step in range(3):
        if step == 2:       # equal Labels anew: found neither by identity nor by value
            builder._series, builder._label_cache = {}, {}
        col.publish(builder.build(model, ExporterStatus()))
        assert text(reg) == generate_latest(reg) and om(reg) == om_latest(reg), step
        assert sum(map(len, text.by_ident.values())) > 25 * 5
        assert not any(_is_kept(key, text) for key in text.prefixes)
        shared = 0
        for key, ident in om.by_ident.items():
            for i, prefix in ident.items():
                hit = text.by_ident.get(key, {}).get(i)
                if hit is not None and hit == prefix:
                    assert hit is prefix, (key, prefix)
                    shared += 1
        assert shared > 25 * 5, shared


def _is_kept(key, cache) -> bool:
    """Whether prefixes' key is the line of a kept Labels' sample."""
    ident = cache.by_ident.get((key[0], key[1]), {})
    return any(tuple(cache.alive[i].items()) == key[2] for i in ident)


def test_kept_labels_samples_lines_not_kept_by_value():
    """Samples (not Columns) over kept Labels: their lines are kept by
    identity only, as Columns' are."""
    from prometheus_client.exposition import generate_latest
    kept = _Kept()
    cached = LineCache(generate_latest)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(kept)
    for step in range(4):
        kept.step = step
        assert cached(reg) == generate_latest(reg), step
        assert sum(map(len, cached.by_ident.values())) >= 10
        assert not any(_is_kept(key, cached) for key in cached.prefixes), step


def test_chunks_made_as_taken():
    """LineCache.chunks makes a metric's piece when it is taken (gzip_chunks
    compresses each before the next is made: no list of all of them)."""
    import gzip

    from prometheus_client.exposition import generate_latest

    from erofs_top.exporter.encode import gzip_chunks

    class Counted:
        made = 0

        def collect(self):
            for i in range(5):
                Counted.made += 1
                g = GaugeMetricFamily(f"lazy_{i}", "made when asked", labels=["k"])
                g.add_metric([f"v{i}"], i)
                yield g
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Counted())
    cached = LineCache(generate_latest)
    seen = []
    for piece in cached.chunks(reg):
        seen.append((Counted.made, piece))
    assert [made for made, _ in seen] == [1, 2, 3, 4, 5, 5]
    assert "".join(p for _, p in seen).encode() == generate_latest(reg)
    assert gzip.decompress(gzip_chunks(cached.chunks(reg), 1)) == generate_latest(reg)


def test_shared_lines_are_one_str_and_bounded(monkeypatch):
    """shared_line gives one str per text (across LineCaches), and its table
    starts anew at MAX_KEPT lines (series come and go: no line is kept for
    ever, as sys.intern's are on Python 3.12)."""
    import erofs_top.exporter.encode as encode
    monkeypatch.setattr(encode, "MAX_KEPT", 4)
    monkeypatch.setattr(encode, "_SHARED_LINES", {})
    first = encode.shared_line("".join(["erofs_top_x", '{k="1"}']))
    again = encode.shared_line("".join(["erofs_top_x", '{k="1"}']))
    assert again is first and again == 'erofs_top_x{k="1"}'
    for i in range(2, 6):
        encode.shared_line(f'erofs_top_x{{k="{i}"}}')
    assert len(encode._SHARED_LINES) <= 4
    assert 'erofs_top_x{k="1"}' not in encode._SHARED_LINES     # started anew
