"""Derive the Daphnet Parquet splits from the CSV that ships inside the aeon wheel.

Run once, by hand (aeon is not a dependency; nothing downloads at run time):

    pip download aeon==1.6.0 --no-deps -d /tmp/aeon
    python data/daphnet/make_daphnet.py /tmp/aeon/aeon-1.6.0-py3-none-any.whl

Reads ``aeon/datasets/data/Daphnet_S06R02E0/S06R02E0.csv`` from the wheel (a zip) and
writes ``daphnet_s06r02e0_{train,test}.parquet`` beside this script: the first half of the
recording is the train split, the second half the test split, each cut into segments
of ``SEGMENT`` consecutive records (key ``segment``, order ``step``).
"""

from __future__ import annotations

import io
import os
import sys
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MEMBER = "aeon/datasets/data/Daphnet_S06R02E0/S06R02E0.csv"
SEGMENT = 320  # records per series: 5 s at 64 Hz


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        text = z.read(MEMBER).decode()
    header = text.splitlines()[0].split(",")
    channels = header[1:10]
    rows = np.genfromtxt(io.StringIO(text), delimiter=",", skip_header=1, usecols=range(1, 11))
    values = rows[:, :9].astype(np.float32)
    assert not rows[:, 9].any(), "expected no anomaly labels in this recording"
    half = len(values) // 2
    here = os.path.dirname(os.path.abspath(__file__))
    for split, part, offset in (("train", values[:half], 0), ("test", values[half:], half)):
        n = len(part) // SEGMENT * SEGMENT
        part = part[:n]
        segment = np.repeat(np.arange(n // SEGMENT, dtype=np.int32), SEGMENT)
        step = np.tile(np.arange(SEGMENT, dtype=np.int32), n // SEGMENT)
        sample = np.arange(offset, offset + n, dtype=np.int32)
        flat = pa.array(part.reshape(-1), pa.float32())
        table = pa.table({
            "segment": pa.array(segment),
            "step": pa.array(step),
            "sample": pa.array(sample),
            "values": pa.FixedSizeListArray.from_arrays(flat, len(channels)),
        })
        table = table.replace_schema_metadata({
            "columns_of_values": ",".join(channels),
            "source": "Daphnet Freezing of Gait, subject S06 run R02 (UCI ML repository, CC BY 4.0), "
                      "as bundled with aeon 1.6.0 (aeon/datasets/data/Daphnet_S06R02E0/S06R02E0.csv)",
            "units": "acceleration in mg, 64 Hz",
        })
        path = os.path.join(here, f"daphnet_s06r02e0_{split}.parquet")
        pq.write_table(table, path, compression="zstd")
        print(f"{path}: {table.num_rows} records, {n // SEGMENT} segments")


if __name__ == "__main__":
    main(sys.argv[1])
