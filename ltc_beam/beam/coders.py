"""A Beam coder for ``pa.Table`` elements: Arrow IPC bytes on the wire, sizes from buffers.

Beam's fallback coder pickles tables, and a pickled slice carries its parent's whole
buffers (a chunk cut from a long series pickles the whole series). Beam also encodes a
sample of every PCollection's elements to estimate their size, so even fused stages paid
that. ``ArrowTableCoder`` writes only the table's own rows and estimates sizes without
encoding; it is registered for ``pa.Table``, so PCollections typed ``pa.Table`` (or
containers of it) use it.
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from ltc_beam import arrow


class ArrowTableCoder(beam.coders.Coder):
    """``pa.Table`` ↔ Arrow IPC stream bytes (schema and its metadata included)."""

    def encode(self, value: pa.Table) -> bytes:
        return arrow.to_ipc(value)

    def decode(self, encoded: bytes) -> pa.Table:
        return arrow.from_ipc(encoded)

    def estimate_size(self, value: pa.Table) -> int:
        return int(value.nbytes)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return pa.Table


beam.coders.registry.register_coder(pa.Table, ArrowTableCoder)
