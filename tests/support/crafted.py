"""Crafted files for the checkpoint tests: a pickle that makes a marker, hand-built containers.

`WritesMarker` is the canary: unpickling it creates a folder, so a test that
finds no marker after a load proves that no pickle was run.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile

import numpy as np
import torch

from per_exp import codec


def same(a, b, path="v"):
    """Equal values of exactly the same types, all the way down (NaN equal to NaN)."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b) or torch.equal(a.isnan(), b.isnan()), path
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and (a == b or (a != a and b != b)), path
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b)), path
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for (ka, va), kb in zip(a.items(), b):
            same(ka, kb, f"{path} key")
            same(va, b[kb], f"{path}[{ka!r}]")
        assert getattr(a, "_metadata", None) == getattr(b, "_metadata", None), path
    else:
        assert a == b, path


class WritesMarker:
    """Unpickling this calls os.mkdir(marker): the canary for code run on load (any call would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def zip_entries(entries: dict[str, bytes], compress=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def manifest(tree, n=0, **over) -> bytes:
    m = {"container": codec.CONTAINER, "version": codec.VERSION, "arrays": n, "tree": tree, **over}
    return json.dumps(m).encode()


def npy(a, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()
