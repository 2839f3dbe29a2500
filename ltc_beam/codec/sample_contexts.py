"""Sample-coding integers ANS-coded with geometric tables that follow the stream's activity.

Telemetry is not stationary: a walking subject's accelerometers all get busy at once, then
all rest. One table per column (:mod:`ltc_beam.codec.sample_tables`) codes busy and quiet
stretches with one distribution; here each column after the first is coded with the
*activity* of the columns before it around the same record (decoded first, so the decoder
knows it), sorted into octave classes, each class with its own two-sided geometric
distribution (one 16-bit parameter instead of a stored histogram). Daphnet's nine
accelerometer channels at 30 dB: 4.51 bits/value with per-column tables, 4.27 with these
(order-0 entropy of the same integers 4.31). Where the geometric shape fits a column badly
(two levels of a status, many exact zeros, the first column's mixture of scales) it takes a
stored table of its own (:mod:`ltc_beam.codec.sample_tables`) instead, whichever codes it in
fewer bits, the table's packed size estimated: Daphnet at 20 / 30 / 47 dB 1.6 / 0.7 / 2.3 %
shorter than with classes throughout. Where whole-stream per-column tables are shorter
still, sample coding keeps those.

The first column has no columns before it, and a column whose busy spells are its own (rain
among dust readings) gains little from theirs. With ``recent`` (from session 28) up to
``MAX_RECENT_COLUMNS`` columns take classes that also follow their own activity over the
records just before each (:func:`recent_classes`), which a decoder learns only record by
record: such a column is cut into lanes, and each step decodes one record of every lane, so
it costs :func:`lane_length` (at least 16) steps, not one per record. On 74 codecs of 14
datasets (``ltc-beam evaluate``) 21 streams came out shorter and none longer: PigCVP blood
pressure alone at 1-4 bits/value by 1.0-1.8 %, Daphnet's nine channels by 1.1-1.8 %, pvlib's
soiling inputs by 1.4-4.5 %. Decoding such streams took 1.5-7x as long (Daphnet 13.6 -> 7.1
MB/s on one core, PigCVP 23 -> 15); ``MAX_RECENT_COLUMNS`` and ``MIN_RECENT_SAVING`` bound
that.

Layout (``schemas/BITSTREAM.md``, "Sample-coded payload"): the width varint ``W`` (class
tables cover ``centre - W`` … ``centre + W``, padded to the widest stored table; the rest
escapes), then per column the zigzag
varint of its centre, a byte with the number ``n`` of its classes (with ``RECENT_FLAG`` for
recent ones, then their u16 mask and the varint of the column's scale), and ``n``
little-endian u16 parameters, one per class present in it in increasing order, or the byte
``HISTOGRAM`` for a column with a stored table; then those columns' tables (as
:func:`~ltc_beam.codec.sample_tables.tables_block` stores them); then the ANS words of
:class:`~ltc_beam.entropy.SymbolEncoder`, one step per column (per lane position for recent
classes). Weights and classes are built with integer arithmetic alone, so encoder and
decoder agree on every machine.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import zstandard

from ltc_beam.bitstream import read_varint, unzigzag, varint, zigzag
from ltc_beam.codec.sample_tables import MAX_WIDTH, PRECISION, column_entropies, column_table, frequencies, read_tables_block, stored_tables, table_bytes, tables_block, table_weights, widened
from ltc_beam.entropy import SymbolDecoder, SymbolEncoder, SymbolTables, bit_lengths
from ltc_beam.errors import FormatError

#: Records either side of a record whose activity sets its class (the measured best of 0, 1, 3, 7).
HALF_WINDOW = 3
#: Octave classes either side of the mean activity (beyond: the last class).
CLASSES_BELOW, CLASSES_ABOVE = 6, 5
CLASS_COUNT = CLASSES_BELOW + CLASSES_ABOVE + 1
#: Fixed-point bits of a geometric parameter, and of the activity ratios.
THETA_BITS, ACTIVITY_BITS = 16, 8
#: Largest magnitude counted in an activity (escapes may be far larger).
ACTIVITY_CAP = 1 << 20
#: Most table entries built for one stream (tables x width): about 60 MB while they are built.
MAX_ENTRIES = 1 << 21
#: Largest magnitude of an integer or centre (so that ``|x - centre|`` and a table's ends fit int64).
LIMIT = (1 << 62) - MAX_WIDTH
#: Most integers in a stream (so that every window's activity stays below 2**53, exact in float64).
MAX_VALUES = 1 << 40
_HEAD = 1 << 32  # weight of a table's centre
#: What a stored table adds to the packed tables is estimated as its own zstd frame at
#: ``ESTIMATE_LEVEL``, less the frame's header (one for all of them).
ESTIMATE_LEVEL, FRAME_BYTES = 3, 9
#: A column's tables: its classes' geometric parameters, or ``(low, bytes)`` of one stored table.
Shape = np.ndarray | tuple[int, np.ndarray]
#: A column's class count byte that says it has one stored table instead of classes.
HISTOGRAM = 0xFF
#: With ``recent``: the records before a record, in its lane, whose own activity joins its
#: class (the measured best of 1, 2, 4, 8 on Daphnet and PigCVP).
RECENT_RECORDS = 2
#: With ``recent``: a column of such classes is decoded in lanes (contiguous runs) of
#: :func:`lane_length` records, one record of every lane per step (a step costs a call, not
#: per record; a lane's first record has no records before it: 16 kept 90 % of 64's gain).
MIN_LANE, MAX_LANES = 16, 4096
#: With ``recent``: most columns given such classes, and the least share of a column's bits
#: they must save (each costs ``lane_length`` decoding steps: without that share, Daphnet's
#: test chunks decoded in 22.0 ms instead of 17.4 for 0.08 % fewer bytes, TMY3's in 6.2 ms
#: instead of 4.4).
MAX_RECENT_COLUMNS, MIN_RECENT_SAVING = 4, 0.02
#: With ``recent``: the bit of a column's class count byte that says its classes are recent ones.
RECENT_FLAG = 0x80
#: Most integers coded with ``recent`` (so that an activity stays below 2**48).
RECENT_VALUES = 1 << 20
_AVERAGE_CAP = 1 << 50  # a mean activity counts at most this (far above the top class)


def activity_ratios(magnitudes: np.ndarray, records: int | None = None, scale: int | None = None) -> np.ndarray:
    """One column's ``|integers - centre|``, capped at ``ACTIVITY_CAP`` → each over the
    column's mean (capped) magnitude, in fixed point (``ACTIVITY_BITS``). Integers only.
    ``records`` and ``scale`` (:func:`_scale`): the column's, where ``magnitudes`` are some
    of its records (a recent column's decoder learns them lane step by lane step)."""
    capped = np.minimum(magnitudes, ACTIVITY_CAP)
    records = capped.size if records is None else records
    scale = int(capped.sum()) if scale is None else scale
    return (capped * (records << ACTIVITY_BITS)) // max(scale, 1)


def column_classes(activity: np.ndarray, columns: int) -> np.ndarray:
    """Classes (0 … ``CLASS_COUNT - 1``) of the records of the next column, from the summed
    :func:`activity_ratios` of the ``columns`` columns before it: the octave of each
    record's activity over the ``HALF_WINDOW`` records either side against its mean; all 0
    for the first column."""
    if not columns:
        return np.zeros(activity.size, np.int64)
    total, count = window_activity(activity, columns)
    octave = bit_lengths(total) - bit_lengths(count << ACTIVITY_BITS)  # exact: below 2**53
    return np.clip(octave, -CLASSES_BELOW, CLASSES_ABOVE) + CLASSES_BELOW


def window_activity(activity: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Each record's summed activity over the ``HALF_WINDOW`` records either side, and how
    many activities that sums (records in the window times ``columns``)."""
    records = activity.size
    cumulative = np.concatenate([[0], np.cumsum(activity)])
    index = np.arange(records)
    end, start = np.minimum(index + HALF_WINDOW + 1, records), np.maximum(index - HALF_WINDOW, 0)
    return cumulative[end] - cumulative[start], (end - start) * columns


def lane_length(records: int) -> int:
    """Records per lane of a column of recent classes (the last lane may be shorter)."""
    return min(records, max(MIN_LANE, -(-records // MAX_LANES)))


def across_parts(across: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`recent_classes` takes of the columns before a column (``across``: their
    :func:`window_activity`): each record's mean activity of theirs (-1 for the first
    column, which has none), and its :func:`column_classes` (the mean's class for the first column)."""
    window, seen = across
    theirs = np.where(seen > 0, np.minimum(window // np.maximum(seen, 1), _AVERAGE_CAP), -1)
    octave = bit_lengths(window) - bit_lengths(seen << ACTIVITY_BITS)
    return theirs, np.where(seen > 0, np.minimum(np.maximum(octave, -CLASSES_BELOW), CLASSES_ABOVE), 0) + CLASSES_BELOW


def recent_classes(own: np.ndarray, index: np.ndarray, position, theirs: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Recent classes of the records ``index`` (at ``position`` in their lanes) of a column:
    the octave, against the mean, of the mean of its own activity (``own``: its
    :func:`activity_ratios`, known there) over the ``RECENT_RECORDS`` records before each in
    its lane and, where present, ``theirs`` (:func:`across_parts` at ``index``); at a lane's
    first record ``start`` (its :func:`column_classes`; the mean's class for the first
    column). Integers only."""
    count = np.minimum(position, RECENT_RECORDS)
    if not np.any(count):
        return start
    total = sum(own[np.maximum(index - back, 0)] * (position >= back) for back in range(1, RECENT_RECORDS + 1))
    mine = np.minimum(total // np.maximum(count, 1), _AVERAGE_CAP)
    mean = np.where(theirs >= 0, (mine + theirs) // 2, mine)
    octave = np.minimum(np.maximum(bit_lengths(mean) - (ACTIVITY_BITS + 1), -CLASSES_BELOW), CLASSES_ABOVE)
    return np.where(count > 0, octave + CLASSES_BELOW, start)


def encode_contexted(ints: np.ndarray, recent: bool = False) -> tuple[bytes, bool] | None:
    """Integers ``[M, d]`` → (header and ANS words, whether some column has recent classes);
    None where the tables would be too large or an integer is beyond ±``LIMIT``. Each column
    takes its classes' geometric tables or one stored table of its own
    (:mod:`ltc_beam.codec.sample_tables`), whichever codes it in fewer bits by estimate (its
    header, a stored table's packed size, included). With ``recent`` (at most
    ``RECENT_VALUES`` integers) up to ``MAX_RECENT_COLUMNS`` columns take
    :func:`recent_classes` instead, where those code them in fewer bits by estimate."""
    records, d = ints.shape
    if ints.size >= MAX_VALUES or (ints.size and not -LIMIT <= int(ints.min()) <= int(ints.max()) <= LIMIT):
        return None
    if recent and ints.size > RECENT_VALUES:
        return None
    centres = np.sort(ints, axis=0)[(records - 1) // 2] if records else np.zeros(d, np.int64)  # a median, exactly
    magnitudes = np.abs(ints - centres)
    width = int(min(magnitudes.max(initial=0), MAX_WIDTH // 2 - 1))
    if d * (2 * width + 2) > MAX_ENTRIES:  # (a table or more per column with records: spares the classes)
        return None
    classes, latest = _all_classes(magnitudes, recent and records > 0)
    ranks, thetas = _ranks_and_parameters(magnitudes, classes)
    if _entries(thetas, width) > MAX_ENTRIES:
        return None
    tables, ids = _tables(centres, thetas, width, ranks)
    flagged = np.zeros(d, bool)
    if latest is not None:
        (classes, ranks, thetas), flagged = _with_recent(ints, centres, magnitudes, width, (classes, ranks, thetas), tables, ids, latest)
        if flagged.any():
            tables, ids = _tables(centres, thetas, width, ranks)
    columns = _shapes(ints, thetas, width, tables, ids)
    if _entries(columns, width) > MAX_ENTRIES:  # (a stored table one wider than the classes' at the limit)
        columns = thetas
    flagged &= np.array([not isinstance(c, tuple) for c in columns], bool)
    head = bytearray(varint(width))
    for j, (centre, column) in enumerate(zip(centres, columns)):
        head += varint(zigzag(int(centre)))
        if isinstance(column, tuple):
            head += bytes([HISTOGRAM])
            continue
        head += bytes([column.size | (RECENT_FLAG if flagged[j] else 0)])
        if flagged[j]:  # which classes, and the column's capped magnitude (its activities' scale)
            mask = sum(1 << int(c) for c in np.unique(classes[j]))
            head += mask.to_bytes(2, "little") + varint(_scale(magnitudes[:, j]))
        head += column.astype("<u2").tobytes()
    stored = [c for c in columns if isinstance(c, tuple)]
    if stored:
        head += tables_block([low for low, _ in stored], [code for _, code in stored])
        tables, ids = _tables(centres, columns, width, ranks)
    encoder = SymbolEncoder(tables)
    for j in range(d):
        if flagged[j]:
            for index in _lane_steps(records):
                encoder.encode(ints[index, j], ids[j][index])
        else:
            encoder.encode(ints[:, j], ids[j])
    return bytes(head) + encoder.finish(), bool(flagged.any())


def decode_contexted(data: bytes, records: int, d: int, recent: bool = False) -> np.ndarray:
    """Inverse of :func:`encode_contexted` for ``records`` x ``d`` integers; FormatError when it does not parse."""
    buf = memoryview(data)
    if records * d >= MAX_VALUES or (recent and records * d > RECENT_VALUES):
        raise FormatError(f"sample-coded payload: {records} x {d} integers are too many for activity classes")
    width, offset = read_varint(buf, 0, len(buf), "sample-coded payload: table width")
    if width >= MAX_WIDTH // 2:
        raise FormatError(f"sample-coded payload: tables of width {width} (below {MAX_WIDTH // 2})")
    centres, columns, heads = np.zeros(d, np.int64), [], {}
    for j in range(d):
        centre, offset = read_varint(buf, offset, len(buf), "sample-coded payload: column centre")
        if abs(unzigzag(centre)) > LIMIT:
            raise FormatError(f"sample-coded payload: a column centre beyond ±{LIMIT}")
        centres[j] = unzigzag(centre)
        if offset < len(buf) and buf[offset] == HISTOGRAM:
            columns.append(None)
            offset += 1
            continue
        marker = buf[offset] if offset < len(buf) else 0
        flagged = recent and bool(marker & RECENT_FLAG)
        count = marker & ~RECENT_FLAG if flagged else marker
        if offset >= len(buf) or not min(records, 1) <= count <= (CLASS_COUNT if j or flagged else 1) or (flagged and not records):
            raise FormatError("sample-coded payload: a column's classes are missing or too many")
        offset += 1
        if flagged:
            mask, scale, offset = _recent_head(buf, offset, count, records)
            heads[j] = (mask, scale)
        if offset + 2 * count > len(buf):
            raise FormatError("sample-coded payload: a column's classes are missing or too many")
        columns.append(np.frombuffer(buf, "<u2", count=count, offset=offset).astype(np.int64))
        offset += 2 * count
    stored = [j for j, column in enumerate(columns) if column is None]
    if stored:  # (tables that could not all fit are refused before they are unpacked)
        tables = sum(_counts(c for c in columns if c is not None)) + len(stored)
        widest = min(MAX_WIDTH, MAX_ENTRIES // tables - 1)
        if widest < 2 * width + 1:
            raise FormatError("sample-coded payload: its tables are too large")
        lows, codes, offset = read_tables_block(buf, offset, len(stored), widest)
        if max(abs(low) for low in lows) > LIMIT:
            raise FormatError(f"sample-coded payload: a table's low beyond ±{LIMIT}")
        for j, low, code in zip(stored, lows, codes):
            columns[j] = (low, code)
    if _entries(columns, width) > MAX_ENTRIES:
        raise FormatError("sample-coded payload: its tables are too large")
    tables = _tables(centres, columns, width, None)[0]
    decoder = SymbolDecoder(buf[offset:], tables)
    ints = np.zeros((records, d), np.int64)
    activity = np.zeros(records, np.int64)
    first = _first_tables(columns)
    for j, column in enumerate(columns):
        if isinstance(column, tuple):
            ints[:, j] = decoder.decode(np.full(records, first[j]))
        elif j in heads:
            ints[:, j] = _decode_recent(decoder, first[j], *heads[j], centres[j], window_activity(activity, j))
        else:
            present, rank = _present(column_classes(activity, j))
            if present.size != column.size:
                raise FormatError(f"sample-coded payload: column {j} states {column.size} classes, its records fall in {present.size}")
            ints[:, j] = decoder.decode(first[j] + rank)
        _check_range(ints[:, j])
        activity += activity_ratios(np.abs(ints[:, j] - centres[j]))
    decoder.finish()
    return ints


def _recent_head(buf: memoryview, offset: int, count: int, records: int) -> tuple[int, int, int]:
    """A column's mask of recent classes present (``count`` of them) and its scale (capped
    magnitudes' sum), and the offset after them; FormatError where they do not fit."""
    if offset + 2 > len(buf):
        raise FormatError("sample-coded payload: a column's classes are missing")
    mask = int.from_bytes(buf[offset : offset + 2], "little")
    if mask >> CLASS_COUNT or mask.bit_count() != count:
        raise FormatError(f"sample-coded payload: a column states {count} classes and the mask {mask:#x}")
    scale, offset = read_varint(buf, offset + 2, len(buf), "sample-coded payload: column scale")
    if scale > records * ACTIVITY_CAP:
        raise FormatError("sample-coded payload: a column's scale beyond its records' cap")
    return mask, scale, offset


def _decode_recent(decoder: SymbolDecoder, first: int, mask: int, scale: int, centre: int, across: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A column's integers coded with recent classes, lane step by lane step (:func:`recent_classes`)."""
    records = across[0].size
    theirs, start = across_parts(across)
    rank = np.full(CLASS_COUNT, -1, np.int64)
    present = np.flatnonzero([(mask >> c) & 1 for c in range(CLASS_COUNT)])
    rank[present] = np.arange(present.size)
    out, own = np.zeros(records, np.int64), np.zeros(records, np.int64)
    for position, index in enumerate(_lane_steps(records)):
        ranks = rank[recent_classes(own, index, position, theirs[index], start[index])]
        if (ranks < 0).any():
            raise FormatError("sample-coded payload: a record falls in a class its column does not state")
        out[index] = values = decoder.decode(first + ranks)
        _check_range(values)
        own[index] = activity_ratios(np.abs(values - centre), records, scale)
    if _scale(np.abs(out - centre)) != scale:
        raise FormatError("sample-coded payload: a column's integers do not hold the scale it states")
    return out


def _check_range(values: np.ndarray) -> None:
    """FormatError where a decoded integer lies beyond ±``LIMIT`` (the encoder writes none)."""
    if values.size and not -LIMIT <= int(values.min()) <= int(values.max()) <= LIMIT:
        raise FormatError(f"sample-coded payload: an integer beyond ±{LIMIT}")


def _all_classes(magnitudes: np.ndarray, recent: bool) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Each column's records' classes as the decoder finds them: those of
    :func:`column_classes` and (``recent``, records present) those of :func:`recent_classes`."""
    records, d = magnitudes.shape
    activity = np.zeros(records, np.int64)
    index = np.arange(records)
    plain, latest = [], []
    for j in range(d):
        own = activity_ratios(magnitudes[:, j])
        if recent:  # (one window sum for both: a recent column's lane starts take column_classes')
            theirs, start = across_parts(window_activity(activity, j))
            plain.append(start if j else np.zeros(records, np.int64))
            latest.append(recent_classes(own, index, index % lane_length(records), theirs, start))
        else:
            plain.append(column_classes(activity, j))
        activity += own
    return plain, latest if recent else None


def _with_recent(
    ints: np.ndarray, centres: np.ndarray, magnitudes: np.ndarray, width: int,
    plain: tuple[list, list, list], tables: SymbolTables, ids: list, latest: list[np.ndarray],
) -> tuple[tuple[list, list, list], np.ndarray]:
    """``plain``'s (classes, ranks, parameters), coded with ``tables`` and ``ids``, with the
    recent classes ``latest`` in the columns they code in fewer bits by estimate, their mask
    and scale included (by ``MIN_RECENT_SAVING`` of the column's bits), the
    ``MAX_RECENT_COLUMNS`` they shorten most; and which columns took them. None take them
    where their tables would pass ``MAX_ENTRIES``."""
    d = ints.shape[1]
    none = np.zeros(d, bool)
    ranks, thetas = _ranks_and_parameters(magnitudes, latest)
    if _entries(thetas, width) > MAX_ENTRIES:
        return plain, none
    recent_tables, recent_ids = _tables(centres, thetas, width, ranks)
    before = _column_bits(ints, tables, ids, plain[2])
    head = np.array([8 * (2 + len(varint(_scale(m)))) for m in magnitudes.T])
    saving = before - _column_bits(ints, recent_tables, recent_ids, thetas) - head
    flagged = none.copy()
    flagged[np.argsort(-saving, kind="stable")[:MAX_RECENT_COLUMNS]] = True
    flagged &= saving > MIN_RECENT_SAVING * before
    mixed = tuple([r if f else p for p, r, f in zip(kept, taken, flagged)] for kept, taken in zip(plain, (latest, ranks, thetas)))
    if not flagged.any() or _entries(mixed[2], width) > MAX_ENTRIES:
        return plain, none
    return mixed, flagged


def _column_bits(ints: np.ndarray, tables: SymbolTables, ids: list, thetas: list[np.ndarray]) -> np.ndarray:
    """Each column's estimated bits under its tables, its classes' parameters included."""
    return np.array([tables.bits(ints[:, j], ids[j]) + 16 * thetas[j].size for j in range(ints.shape[1])])


def _scale(magnitudes: np.ndarray) -> int:
    """A column's capped magnitudes' sum: what its activity ratios are relative to."""
    return int(np.minimum(magnitudes, ACTIVITY_CAP).sum())


def _ranks_and_parameters(magnitudes: np.ndarray, classes: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per column, its records' table among its classes present, and the fixed-point
    geometric parameter of each such class (maximum likelihood from its mean magnitude)."""
    ranks, thetas = [], []
    for j, column in enumerate(classes):
        rank = _present(column)[1]
        mean = np.bincount(rank, weights=magnitudes[:, j].astype(np.float64)) / np.maximum(np.bincount(rank), 1)
        theta = np.where(mean > 0, (np.sqrt(1 + mean * mean) - 1) / np.maximum(mean, 1e-300), 0.0)
        ranks.append(rank)
        thetas.append(np.minimum(np.round(theta * (1 << THETA_BITS)), (1 << THETA_BITS) - 1).astype(np.int64))
    return ranks, thetas


def _lane_steps(records: int) -> list[np.ndarray]:
    """The records of each decoding step of a column of recent classes: one of every lane, in order."""
    lane = lane_length(records)
    return [np.arange(step, records, lane) for step in range(lane)]


def _present(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The classes present (increasing) and each record's rank among them."""
    seen = np.bincount(classes, minlength=CLASS_COUNT) > 0
    return np.flatnonzero(seen), (np.cumsum(seen) - 1)[classes]


def _shapes(ints: np.ndarray, thetas: list[np.ndarray], width: int, geometric: SymbolTables, ids: list[np.ndarray]) -> list[Shape]:
    """Each column's tables: its classes' parameters (``thetas``, the ``geometric`` tables,
    each record's table ``ids``), or ``(low, bytes)`` of one stored table where that codes it
    in fewer bits (its bytes counted as estimated packed)."""
    estimator = zstandard.ZstdCompressor(level=ESTIMATE_LEVEL)
    floors = column_entropies(ints)  # no stored table codes a column in fewer bits
    classed = [geometric.bits(column, ids[j]) for j, column in enumerate(ints.T)]
    tried = [j for j in range(ints.shape[1]) if classed[j] + 16 * thetas[j].size > floors[j]]
    stored = []
    for j in tried:
        values, counts = np.unique(ints[:, j], return_counts=True)
        low, code = column_table(values, counts)
        stored.append((low, widened(values, counts, low, code, 2 * width + 1)))  # as wide as it will be padded to
    own = stored_tables([low for low, _ in stored], [code for _, code in stored])
    columns = list(thetas)
    for k, (j, (low, code)) in enumerate(zip(tried, stored)):
        plain = table_bytes(low, code)
        size = min(len(plain), len(estimator.compress(plain)) - FRAME_BYTES)  # (tables are packed where shorter)
        if own.bits(ints[:, j], k) + 8 * (size - 2 * thetas[j].size) < classed[j]:
            columns[j] = (low, code)
    return columns


def _counts(columns: Iterable[Shape]) -> list[int]:
    """Each column's number of tables: its classes', or one stored table."""
    return [1 if isinstance(c, tuple) else c.size for c in columns]


def _first_tables(columns: list[Shape]) -> np.ndarray:
    """The number of each column's first table (tables are numbered column by column)."""
    return np.cumsum([0, *_counts(columns)])


def _entries(columns: list[Shape], width: int) -> int:
    """Entries of all the tables (each padded to :func:`_symbols` and its escape)."""
    return sum(_counts(columns)) * (_symbols(columns, width) + 1)


def _symbols(columns: list[Shape], width: int) -> int:
    """In-range integers of every table: the geometric ones' ``2 * width + 1``, or a stored one's if wider."""
    return max([2 * width + 1] + [c[1].size - 1 for c in columns if isinstance(c, tuple)])


def _tables(centres: np.ndarray, columns: list[Shape], width: int, ranks: list[np.ndarray] | None) -> tuple[SymbolTables, list[np.ndarray]]:
    """SymbolTables of every column's tables in order (each class present, over ``centre -
    width`` … ``centre + width`` and the escape; or its stored table), all padded to the
    widest; and, given each record's rank among its column's classes, each record's table."""
    symbols = _symbols(columns, width)
    theta = np.concatenate([c for c in columns if not isinstance(c, tuple)] or [np.zeros(0, np.int64)])
    tail = np.empty((theta.size, width + 1), np.int64)  # weights of |i - centre| = 0 … width
    tail[:, 0] = _HEAD
    for k in range(1, width + 1):
        tail[:, k] = (tail[:, k - 1] * theta) >> THETA_BITS
    padding = np.zeros((theta.size, symbols - 2 * width - 1), np.int64)  # (past a stored table's width)
    geometric = iter(np.concatenate([tail[:, :0:-1], tail, padding, np.maximum(tail[:, -1:], 1)], axis=1))  # escape: about the rest
    weights, lows = [], []
    for centre, column in zip(centres, columns):
        if isinstance(column, tuple):
            weights.append(table_weights(column[1], symbols))
            lows.append(column[0])
        else:
            weights.extend(next(geometric) for _ in range(column.size))
            lows.extend([centre - width] * column.size)
    freqs = frequencies(np.stack(weights)) if weights else frequencies(np.ones((1, symbols + 1), np.int64))
    first = _first_tables(columns)
    tables = SymbolTables(freqs, np.array(lows or [0], np.int64), PRECISION)
    return tables, [first[j] + (0 if isinstance(columns[j], tuple) else rank) for j, rank in enumerate(ranks or [])]
