"""The ModelHandler that runs a codec inside ``RunInference``.

RunInference loads the model once per worker process (``load_model``) and shares it across
threads; elements reach ``run_inference`` unbatched (``handler.with_no_batching()``): each
element is already a work unit formed deterministically by ``GroupByKey`` upstream — a list
of chunk tables to encode, or a list of compressed tables to decode.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable, Sequence

import pyarrow as pa
from apache_beam.ml.inference.base import ModelHandler

from ltc_beam import arrow

NAMESPACE = "ltc_beam"


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def one_torch_thread() -> None:
    """One torch thread per worker process: Beam and Dask already run a process per core."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


class _EncodeSettings:
    """What the encoder needs besides the codec (plain values: pickled to every worker)."""

    def __init__(
        self, *, layout, column, columns, key, order_by, chunk_size, embed_codec, schema, sample_fallback=True, rd_quantization=None,
        leave_out_repeats=True,
    ):
        self.layout = layout
        self.column = column
        self.columns = columns
        self.key = key
        self.order_by = order_by
        self.chunk_size = chunk_size
        self.embed_codec = embed_codec
        self.sample_fallback = sample_fallback
        self.rd_quantization = rd_quantization
        self.leave_out_repeats = leave_out_repeats
        self.schema = schema

    def compressed_schema(self, input_schema: pa.Schema, codec) -> pa.Schema:
        """The compressed schema (with metadata) these settings give for ``input_schema``
        (``schema``, when set, stands for the input's)."""
        return arrow.compressed_schema(
            input_schema if self.schema is None else arrow.with_range_index_of(self.schema, input_schema),
            codec,
            layout=self.layout,
            column=self.column,
            columns=self.columns,
            key=self.key,
            order_by=self.order_by,
            chunk_size=self.chunk_size,
            embed_codec=self.embed_codec,
        )


class LtcModelHandler(ModelHandler[Sequence[pa.Table], pa.Table, Any]):
    """Loads a codec from a URI (Beam FileSystems: local, gs://, s3://) and encodes or decodes.

    ``task="encode"``: an element is a list of chunk tables of the input schema; the result
    is one compressed table (chunk layout: one row per chunk). An element ``(shard, units)``
    (a list of such lists) gives ``(shard, one compressed table)``. ``task="decode"``: an element
    is a list of compressed tables; the result is one table of the original schema per input.
    ``device="auto"`` runs the transforms on CUDA when the worker has it, else on CPU.
    ``model_copies`` / ``share_across_processes`` are passed to RunInference's model
    sharing (useful on GPU workers, see docs/deployment.md).
    """

    def __init__(
        self,
        codec_uri: str | None,
        *,
        task: str = "encode",
        device: str = "auto",
        settings: _EncodeSettings | None = None,
        model_copies: int | None = None,
        share_across_processes: bool = False,
    ):
        if task not in ("encode", "decode"):
            raise ValueError(f"task must be 'encode' or 'decode', got {task!r}")
        if task == "encode" and codec_uri is None:
            raise ValueError("encoding needs a codec URI")
        self._codec_uri = codec_uri
        self._task = task
        self._device = device
        self._settings = settings
        self._model_copies = model_copies
        self._share_across_processes = share_across_processes

    # -------------------------------------------------------------- ModelHandler API
    def load_model(self):
        """An :class:`Encoder` or :class:`Decoders`: objects used through their methods only,
        as ``share_across_processes`` hands ``run_inference`` a proxy of the model."""
        one_torch_thread()
        device = resolve_device(self._device)
        if self._task == "encode":
            return Encoder(self._codec_uri, device, self._settings)
        return Decoders(self._codec_uri, device)

    def run_inference(self, batch, model, inference_args=None) -> Iterable:
        if self._task == "decode":
            return [model.decode(table) for table in batch]
        if isinstance(batch, tuple):  # (shard, units) from LtcEncodeShards
            shard, units = batch
            tables = [model.encode(unit) for unit in units]
            return [(shard, arrow.concat(tables))]
        return [model.encode(batch)] if batch else []

    def get_num_bytes(self, batch) -> int:
        if isinstance(batch, tuple):
            return sum(self.get_num_bytes(unit) for unit in batch[1])
        return sum(len(t) if isinstance(t, (bytes, bytearray)) else t.nbytes for t in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    def share_model_across_processes(self) -> bool:
        return self._share_across_processes

    def model_copies(self) -> int:
        return self._model_copies or 1


class Encoder:
    """Per-worker encoder: the codec from ``codec_uri`` and the output schema per input schema
    (computed once; RunInference's threads share the encoder)."""

    def __init__(self, codec_uri: str, device: str, settings: _EncodeSettings):
        from ltc_beam.codec.codec import Codec

        self.codec = Codec.load(codec_uri).to(device)
        self.codec.sample_fallback = settings.sample_fallback
        self.codec.leave_out_repeats = settings.leave_out_repeats
        if settings.rd_quantization is not None:  # else as the codec chose when frozen
            self.codec.rd_quantization = settings.rd_quantization
        self.settings = settings
        self._schemas: dict[bytes, pa.Schema] = {}
        self._lock = threading.Lock()

    def encode(self, unit: Sequence) -> pa.Table:
        """One compressed table for a work unit of chunk tables (or their Arrow IPC bytes:
        cheap to move between fused stages and to a shared process)."""
        chunks = [arrow.from_ipc(c) if isinstance(c, (bytes, bytearray)) else c for c in unit]
        return arrow.encode_chunks(chunks, self.codec, self._output_schema(chunks[0].schema))

    def _output_schema(self, schema: pa.Schema) -> pa.Schema:
        ident = schema.serialize().to_pybytes()
        with self._lock:
            out = self._schemas.get(ident)
        if out is None:
            out = self.settings.compressed_schema(schema, self.codec)
            with self._lock:
                self._schemas[ident] = out
        return out


class Decoders:
    """Per-worker decoder: the codec from ``codec_uri`` or, per table, the embedded codec."""

    def __init__(self, codec_uri: str | None, device: str):
        self.device = device
        self.codec = None
        if codec_uri is not None:
            from ltc_beam.codec.codec import Codec

            self.codec = Codec.load(codec_uri).to(device)

    def decode(self, table: pa.Table) -> pa.Table:
        return arrow.decode_table(table, self.codec, device=self.device)
