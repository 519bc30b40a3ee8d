"""/metrics bodies at a lower cost per refresh: prometheus-client's own
encoder, with the text of each sample line before its value kept between
refreshes.

Encoding is most of an exporter refresh (docs/performance.md "Exporter":
~95 ms of ~110 at 1,000 containers x 20 mounts): prometheus-client formats
every label of every sample anew (sort, escape, join), though the label sets
of a node (containers, mounts, images) hardly change from one refresh to the
next.  ``LineCache(encoder)`` asks the encoder itself for each metric's
header lines, for each new sample's line, and for the trailer (OpenMetrics'
``# EOF``), then keeps the line's text up to the value; a refresh only
formats the values.  Whatever it cannot take apart safely (timestamps,
exemplars, a sample name the format writes elsewhere, a line that does not
end in its value) is encoded by the encoder as a whole metric.  The body is
byte for byte the encoder's (tests/unit/test_exporter_encode.py compares
them on Models with hostile names, for every format).

A ``Columns`` family (FamilyBuilder's per-container and per-mount ones:
~15,000 of a node's ~15,300 samples) holds its samples as two columns, kept
Labels and values, and LineCache writes its lines from them in bulk: no
Sample objects made or read.  ``chunks()`` gives the body in pieces, which
``gzip_chunks`` compresses without the whole body made first.
"""
from __future__ import annotations

import zlib

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

MAX_KEPT = 200_000          # sample prefixes kept (then started anew: series come and go)
_EXACT_INT = 1 << 53        # ints below this in size are floats exactly, and repr() them as "N.0"


def go_float(v) -> str:
    """floatToGoString(v), formatted from the digits for an int below 2**53
    (the bytes and counts a Model holds; no float repr): "N.0" below
    1,000,000, else Go's exponent form ("1.2345678e+07") as floatToGoString
    makes it from repr(float(v)) = "N.0"."""
    if type(v) is int and -_EXACT_INT < v < _EXACT_INT:
        if v < 1_000_000:
            return f"{v}.0"
        digits = str(v)
        return f"{f'{digits[0]}.{digits[1:]}0'.rstrip('0.')}e+{len(digits) - 1:02d}"
    return floatToGoString(v)


def line_end(v) -> str:
    """A sample line after its prefix: f" {go_float(v)}\\n" in one call."""
    if type(v) is int and -_EXACT_INT < v < _EXACT_INT:
        if v < 1_000_000:
            return f" {v}.0\n"
        digits = str(v)
        return f" {f'{digits[0]}.{digits[1:]}0'.rstrip('0.')}e+{len(digits) - 1:02d}\n"
    return f" {floatToGoString(v)}\n"


class Labels(dict):
    """A sample's labels that nobody changes once made (every change raises):
    a FamilyBuilder keeps one per series between refreshes, and LineCache
    finds the line of such a sample by the dict's identity, without taking
    its labels apart.  Any other labels dict is taken apart at every body."""
    __slots__ = ()

    def _frozen(self, *a, **k):
        raise TypeError("Labels are read only")

    __setitem__ = __delitem__ = __ior__ = _frozen
    clear = pop = popitem = setdefault = update = _frozen


class Columns(Metric):
    """A metric family of one sample name whose samples are two columns: the
    series' kept Labels and their values (no Sample objects made).  LineCache
    writes its lines from the columns (each value formatted anew: most change
    from one refresh to the next); ``samples`` makes the Sample
    list anew at every read (prometheus-client's encoders, tests), so the
    columns stay the one truth: ``samples`` cannot be assigned, and changing
    the list it returns changes nothing.  Made from a family of the kind
    (its name, help, type and unit)."""

    def __init__(self, like: Metric, sample_name: str, labels, values):
        # (Metric.__init__ not called: it would assign samples; like's name is validated)
        self.name, self.documentation = like.name, like.documentation
        self.type, self.unit = like.type, like.unit
        self.sample_name = sample_name
        self.labels = labels        # a list of Labels, one per sample
        self.values = values        # a sequence of values, as long
        if len(labels) != len(values):
            raise ValueError(f"{like.name}: {len(labels)} labels for {len(values)} values")

    @property
    def samples(self) -> list[Sample]:
        name = self.sample_name
        return [Sample(name, labels, value, None, None)
                for labels, value in zip(self.labels, self.values)]


class _Only:
    """A collector of the given metrics (what an encoder takes)."""
    __slots__ = ("metrics",)

    def __init__(self, metrics):
        self.metrics = metrics

    def collect(self):
        return self.metrics


def _bare(metric: Metric, samples: list) -> Metric:
    out = Metric(metric.name, metric.documentation, metric.type, metric.unit)
    out.samples = samples
    return out


class LineCache:
    """``encoder(registry) -> bytes`` (prometheus-client's, for one format),
    with header and sample-line prefixes kept between calls."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.trailer = encoder(_Only([])).decode("utf-8")
        self.headers: dict[tuple, str] = {}
        # the lines of samples whose labels are a plain dict, by the labels'
        # values (None: encode that metric whole)
        self.prefixes: dict[tuple, str | None] = {}
        # (name, type, sample name) -> {id(Labels): prefix}; ``alive`` keeps
        # every such Labels (id -> it; one per series, however many metrics
        # have its line), so an id there is not reused while its line is kept.
        # A Labels' line is kept here only, not also in prefixes by its values
        # (a tuple of the label pairs per series: ~7 MB of a format's 15 at
        # 1,000 containers x 1,000 mounts, docs/performance.md): a new Labels
        # equal to one before (FamilyBuilder's cache started anew) is encoded
        # once more
        self.by_ident: dict[tuple, dict[int, str]] = {}
        self.alive: dict[int, Labels] = {}
        self.n_ident = 0
        self.encoded_whole = 0      # metrics of the last body the encoder wrote whole

    def __call__(self, registry) -> bytes:
        return "".join(self.chunks(registry)).encode("utf-8")

    def chunks(self, registry):
        """The body's text in pieces (one per metric, then the trailer), made
        as they are taken: gzip_chunks compresses one piece while the next is
        not made yet (no list of all of them: a ~3 MB peak per body at 1,000
        containers x 1,000 mounts that glibc's heap kept, docs/performance.md).
        Take them all before the registry changes."""
        if len(self.prefixes) > MAX_KEPT or self.n_ident > MAX_KEPT:
            self.prefixes, self.by_ident, self.alive, self.n_ident = {}, {}, {}, 0
        self.encoded_whole = 0
        for metric in registry.collect():
            yield self._metric(metric)
        yield self.trailer

    def _whole(self, metric: Metric) -> str:
        self.encoded_whole += 1
        return self._encode(metric)

    def _encode(self, metric: Metric) -> str:
        body = self.encoder(_Only([metric])).decode("utf-8")
        if not body.endswith(self.trailer):
            raise ValueError(f"encoder output for {metric.name} does not end in its trailer")
        return body[:len(body) - len(self.trailer)]

    def _metric(self, metric: Metric) -> str:
        hkey = (metric.name, metric.type, metric.documentation, metric.unit)
        header = self.headers.get(hkey)
        if header is None:
            header = self.headers[hkey] = self._encode(_bare(metric, []))
        if type(metric) is Columns:
            text = self._columns(metric, header, hkey)
            return self._whole(metric) if text is None else text
        lines = [header]
        name = ident = None
        for s in metric.samples:
            if s.timestamp is not None or s.exemplar is not None or s.value is None \
                    or getattr(s, "native_histogram", None) is not None:
                return self._whole(metric)       # not one line ending in its value
            labels = s.labels
            if type(labels) is Labels:
                if s.name is not name:
                    name = s.name
                    ident = self.by_ident.setdefault((hkey[:2], name), {})
                prefix = ident.get(id(labels))
                if prefix is None:
                    prefix = self._prefix(metric, header, s)
                    if prefix is not None:      # (_columns takes every entry's prefix)
                        self._keep(ident, labels, prefix)
            else:
                prefix = self._prefix_of(metric, header, s, hkey)
            if prefix is None:
                return self._whole(metric)
            lines.append(f"{prefix} {go_float(s.value)}\n")
        return "".join(lines)

    def _columns(self, metric: Columns, header: str, hkey: tuple) -> str | None:
        """The lines of a Columns family, or None if one is not a kept prefix
        and its value: per series its kept prefix, found by its Labels'
        identity as in _metric (``alive`` holds its Labels, so an id found
        is that Labels'), then its value; in bulk, no Sample objects read."""
        name = metric.sample_name
        ident = self.by_ident.setdefault((hkey[:2], name), {})
        hits = list(map(ident.get, map(id, metric.labels)))
        if None in hits:
            for i, labels in enumerate(metric.labels):
                if hits[i] is not None:
                    continue
                if type(labels) is not Labels:
                    return None     # a dict that may change: not found by identity
                s = Sample(name, labels, metric.values[i], None, None)
                prefix = self._prefix(metric, header, s)
                if prefix is None:
                    return None
                hits[i] = self._keep(ident, labels, prefix)
        parts = [header] * (2 * len(hits) + 1)
        parts[1::2] = hits
        parts[2::2] = _line_ends(metric.values)
        return "".join(parts)

    def _keep(self, ident: dict, labels: Labels, prefix: str) -> str:
        """Keep ``prefix`` as the line of ``labels`` in ``ident``."""
        key = id(labels)
        self.alive[key] = labels
        ident[key] = prefix
        self.n_ident += 1
        return prefix

    def _prefix_of(self, metric: Metric, header: str, s, hkey: tuple) -> str | None:
        """The kept prefix of sample s (by its labels' values), made if new."""
        key = (hkey[:2], s.name, tuple(s.labels.items()))
        prefix = self.prefixes.get(key, "")
        if prefix == "":
            prefix = self.prefixes[key] = self._prefix(metric, header, s)
        return prefix

    def _prefix(self, metric: Metric, header: str, s) -> str | None:
        """The line of sample s up to its value, as the encoder writes it; None
        if its one-sample metric is not the header and one such line."""
        text = self._encode(_bare(metric, [s]))
        tail = f" {floatToGoString(s.value)}\n"
        line = text[len(header):]
        if (not text.startswith(header) or not line.endswith(tail)
                or line.count("\n") != 1):
            return None
        return shared_line(line[:len(line) - len(tail)])


# line_end of the int values met, across bodies and formats (a node's values
# repeat from one refresh to the next: zeros, counts, sizes of files alike);
# started anew past ENDS_MAX (~125 B an entry: 2 MiB at the bound)
ENDS_MAX = 16_384
_ENDS: dict[int, str] = {}
_INT_ONLY = {int}


def _line_ends(values) -> list[str]:
    """[line_end(v) for v in values], a kept str for an int value met
    before.  Only for a column of ints alone: a float equal to an int (-0.0
    to 0, whose line differs) never finds the int's line."""
    if not set(map(type, values)) <= _INT_ONLY:
        return list(map(line_end, values))
    ends = _ENDS
    if len(ends) > ENDS_MAX:
        ends.clear()
    got = list(map(ends.get, values))
    if None in got:
        for i in [i for i, e in enumerate(got) if e is None]:
            v = values[i]
            got[i] = ends[v] = line_end(v)
    return got


# one str per line across the LineCaches of all formats (text and OpenMetrics
# write most lines alike): not sys.intern, whose strings Python 3.12 never
# frees (a node's series come and go); at MAX_KEPT lines it starts anew (the
# lines the caches hold stay theirs)
_SHARED_LINES: dict[str, str] = {}


def shared_line(line: str) -> str:
    """The str kept for ``line``'s text, ``line`` itself if it is new."""
    got = _SHARED_LINES.get(line)
    if got is None:
        if len(_SHARED_LINES) >= MAX_KEPT:
            _SHARED_LINES.clear()
        got = _SHARED_LINES[line] = line
    return got


def gzip_chunks(chunks, level: int) -> bytes:
    """A gzip member of the text pieces' UTF-8 (what gzip.compress of their
    join gives once decompressed; the header's time is 0), compressed piece by
    piece: no copy of the whole body, as text or bytes, is made (two ~3 MB
    blocks per refresh at 1,000 containers x 1,000 mounts, each mapped and
    faulted in anew: docs/performance.md)."""
    z = zlib.compressobj(level, zlib.DEFLATED, 31)     # 31: a gzip header and trailer
    out = [z.compress(chunk.encode("utf-8")) for chunk in chunks]
    out.append(z.flush())
    return b"".join(out)
