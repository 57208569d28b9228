"""A data-only container for nested state: plain JSON plus NumPy `.npy` entries in one zip.

Reading a file back can build nothing but dicts, lists, tuples, str, int,
float, bool, None, NumPy arrays and scalars of numeric dtypes, and CPU torch
tensors of those dtypes: there is no pickle anywhere, so a crafted file can at
worst be refused. This is what makes a checkpoint on shared storage safe to
resume from (`torch.load(weights_only=False)`, the previous format, runs
whatever code the file names).

Layout (a zip whose entries are all STORED, i.e. uncompressed):

    manifest.json      {"container": "per_exp.state", "version": 1, "arrays": N, "tree": ...}
    arrays/0.npy ... arrays/<N-1>.npy   NumPy's .npy format, read with allow_pickle=False

`tree` is the value in JSON with every type JSON cannot say exactly written
as a tagged object `{"$": <tag>, ...}`:

    tuple            {"$": "tuple", "items": [...]}
    dict             a JSON object when every key is a str not starting with "$",
                     else {"$": "dict", "items": [[key, value], ...]} (optimizer state has int keys)
    OrderedDict      {"$": "odict", "items": [[key, value], ...], "meta": ...}  (torch's
                     state_dict; `meta` is its `_metadata`, when it has one)
    float nan/inf    {"$": "float", "value": "nan" | "inf" | "-inf"}; finite floats are JSON numbers
                     (Python writes the shortest repr that reads back to the same double)
    int beyond 2**63 {"$": "int", "hex": "-0x..."}  (hex: no digit limit on reading, exact in any reader)
    ndarray          {"$": "ndarray", "index": i}
    NumPy scalar     {"$": "npscalar", "index": i}  (a 0-d array entry)
    torch tensor     {"$": "tensor", "index": i, "dtype": "float32"}

Types round-trip exactly (a tuple comes back a tuple, np.float32 an
np.float32), so `random.setstate` and `np.random.set_state` accept what they
gave. Shared references are not kept: an object that appears twice is
written twice and comes back as two objects. Anything else is refused on
writing, with the path to the offending value.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections import OrderedDict
from typing import IO, Any

import numpy as np

CONTAINER = "per_exp.state"
VERSION = 1
MANIFEST = "manifest.json"
_TAG = "$"
_NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex: nothing that needs pickle or has a codec of its own
_BIG = 2**63


class UnsupportedValue(TypeError):
    """A value the container cannot hold exactly (raised when writing; names where it is)."""


class NotAStateFile(ValueError):
    """A file that is not a valid container of this version (raised when reading, before anything is built)."""


# --------------------------------------------------------------------- writing
def dump(obj: Any, f: IO[bytes]) -> None:
    """Write `obj` to the binary file `f` (which may be unseekable)."""
    arrays: list[np.ndarray] = []
    tree = _encode(obj, arrays, "value", set())
    manifest = {"container": CONTAINER, "version": VERSION, "arrays": len(arrays), "tree": tree}
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(MANIFEST, json.dumps(manifest, allow_nan=False, separators=(",", ":")))
        for i, a in enumerate(arrays):
            with z.open(f"arrays/{i}.npy", "w", force_zip64=a.nbytes > 2**30) as e:
                np.lib.format.write_array(e, a, allow_pickle=False)


def dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    dump(obj, buf)
    return buf.getvalue()


def _torch():
    # Imported on demand: the container itself needs only NumPy.
    import torch

    return torch


def _is_tensor(x: Any) -> bool:
    # Without importing torch for values that cannot be tensors.
    return type(x).__module__ == "torch" and type(x).__name__ == "Tensor"


def _key_ok(k: Any) -> bool:
    if type(k) in (str, int, float, bool) or k is None:
        return True
    return type(k) is tuple and all(_key_ok(x) for x in k)


def _encode(x: Any, arrays: list, path: str, active: set) -> Any:
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return x if -_BIG < x < _BIG else {_TAG: "int", "hex": hex(x)}
    if t is float:
        if math.isfinite(x):
            return x
        return {_TAG: "float", "value": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}
    if t is np.ndarray or isinstance(x, np.generic):
        if t is not np.ndarray and not isinstance(x, (np.bool_, np.number)):
            raise UnsupportedValue(f"{path}: NumPy scalar of dtype {x.dtype} (numeric dtypes only)")
        if x.dtype.kind not in _NUMERIC_KINDS or x.dtype.fields is not None:
            raise UnsupportedValue(
                f"{path}: array of dtype {x.dtype} (numeric dtypes only: bool, int, uint, float, complex)"
            )
        arrays.append(np.asarray(x))
        return {_TAG: "ndarray" if t is np.ndarray else "npscalar", "index": len(arrays) - 1}
    if _is_tensor(x):
        return _encode_tensor(x, arrays, path)
    if t in (list, tuple, dict, OrderedDict):
        if id(x) in active:
            raise UnsupportedValue(f"{path}: a {t.__name__} that contains itself")
        active.add(id(x))
        try:
            if t is list:
                return [_encode(v, arrays, f"{path}[{i}]", active) for i, v in enumerate(x)]
            if t is tuple:
                return {_TAG: "tuple", "items": [_encode(v, arrays, f"{path}[{i}]", active) for i, v in enumerate(x)]}
            for k in x:
                if not _key_ok(k):
                    raise UnsupportedValue(
                        f"{path}: dict key {k!r} of type {type(k).__name__} "
                        "(str, int, float, bool, None or tuples of them)"
                    )
            if t is dict and all(type(k) is str and not k.startswith(_TAG) for k in x):
                return {k: _encode(v, arrays, f"{path}[{k!r}]", active) for k, v in x.items()}
            items = [
                [_encode(k, arrays, f"{path} key", active), _encode(v, arrays, f"{path}[{k!r}]", active)]
                for k, v in x.items()
            ]
            if t is dict:
                return {_TAG: "dict", "items": items}
            out = {_TAG: "odict", "items": items}
            meta = getattr(x, "_metadata", None)
            if meta is not None:
                out["meta"] = _encode(meta, arrays, f"{path}._metadata", active)
            return out
        finally:
            active.discard(id(x))
    raise UnsupportedValue(
        f"{path}: {t.__module__}.{t.__qualname__} is not data this container holds "
        "(dict, list, tuple, str, int, float, bool, None, numeric NumPy arrays and scalars, CPU torch tensors)"
    )


def _encode_tensor(x: Any, arrays: list, path: str) -> dict:
    torch = _torch()
    if type(x) is not torch.Tensor:
        raise UnsupportedValue(f"{path}: {type(x).__qualname__} (a torch.Tensor subclass; store .detach() instead)")
    if x.layout != torch.strided or x.is_quantized or x.device.type == "meta":
        raise UnsupportedValue(f"{path}: tensor with layout {x.layout}, device {x.device} (dense tensors only)")
    name = str(x.dtype).removeprefix("torch.")
    t = x.detach().cpu()
    if x.dtype == torch.bfloat16:  # NumPy has no bfloat16: keep its bits
        t = t.view(torch.int16)
    try:
        a = t.numpy()
    except TypeError as e:
        raise UnsupportedValue(f"{path}: tensor of dtype {x.dtype}: {e}") from None
    if a.dtype.kind not in _NUMERIC_KINDS:
        raise UnsupportedValue(f"{path}: tensor of dtype {x.dtype} (numeric dtypes only)")
    arrays.append(a)
    return {_TAG: "tensor", "index": len(arrays) - 1, "dtype": name}


# --------------------------------------------------------------------- reading
def load(f: IO[bytes] | str, max_bytes: int | None = None) -> Any:
    """The value in `f` (a path or a seekable binary file), or NotAStateFile saying why not.

    Every entry must be STORED, so the bytes read are bounded by the file's
    own size (no zip bomb); `max_bytes`, when given, bounds them further.
    """
    try:
        with zipfile.ZipFile(f, "r") as z:
            return _read(z, max_bytes)
    except NotAStateFile:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        RecursionError,
    ) as e:
        raise NotAStateFile(f"not a {CONTAINER} file: {type(e).__name__}: {e}") from None


def loads(data: bytes, max_bytes: int | None = None) -> Any:
    return load(io.BytesIO(data), max_bytes)


def _read(z: zipfile.ZipFile, max_bytes: int | None) -> Any:
    infos = z.infolist()
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise NotAStateFile("the zip holds two entries with the same name")
    if MANIFEST not in names:
        raise NotAStateFile(f"no {MANIFEST}: not a {CONTAINER} file")
    total = 0
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED:
            raise NotAStateFile(f"entry {i.filename!r} is compressed (this format stores entries only)")
        total += i.file_size
    if max_bytes is not None and total > max_bytes:
        raise NotAStateFile(f"entries hold {total} bytes, more than the {max_bytes} allowed")
    manifest = json.loads(
        z.read(MANIFEST).decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant
    )
    if not isinstance(manifest, dict) or manifest.get("container") != CONTAINER:
        raise NotAStateFile(f"{MANIFEST} does not name container {CONTAINER!r}")
    if manifest.get("version") != VERSION:
        raise NotAStateFile(f"container version {manifest.get('version')!r}; this code reads version {VERSION}")
    n = manifest.get("arrays")
    if type(n) is not int or n < 0:
        raise NotAStateFile(f"{MANIFEST}: 'arrays' is {n!r}, not a count")
    expected = {MANIFEST} | {f"arrays/{i}.npy" for i in range(n)}
    if set(names) != expected:
        extra, missing = sorted(set(names) - expected), sorted(expected - set(names))
        raise NotAStateFile(f"entries do not match the manifest (unexpected {extra[:3]}, missing {missing[:3]})")
    arrays = [_read_array(z, f"arrays/{i}.npy") for i in range(n)]
    used: set[int] = set()
    value = _decode(manifest.get("tree"), arrays, used)
    if len(used) != n:
        raise NotAStateFile(f"{n - len(used)} array entries are not referenced by the tree")
    return value


def _no_duplicate_keys(pairs: list) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise NotAStateFile(f"{MANIFEST} repeats a key in one object")
    return d


def _no_constant(name: str):
    raise NotAStateFile(f"{MANIFEST} holds the bare constant {name} (written as a tagged float)")


def _read_array(z: zipfile.ZipFile, name: str) -> np.ndarray:
    # The header is parsed (ast.literal_eval) and checked before a byte of data
    # is allocated; nothing here can unpickle, whatever dtype the header names.
    size = z.getinfo(name).file_size
    with z.open(name) as e:
        version = np.lib.format.read_magic(e)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(e)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(e)
        else:
            raise NotAStateFile(f"entry {name!r} is .npy version {version} (1.0 and 2.0 only)")
        if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise NotAStateFile(f"entry {name!r} has dtype {dtype} (numeric dtypes only)")
        count = math.prod(shape)
        if size - e.tell() != count * dtype.itemsize:
            raise NotAStateFile(f"entry {name!r}: {size - e.tell()} data bytes for shape {shape} of {dtype}")
        data = bytearray(e.read(count * dtype.itemsize))  # bytearray: the array is writable
    a = np.frombuffer(data, dtype=dtype, count=count)
    return a.reshape(shape[::-1]).T if fortran else a.reshape(shape)


def _decode(x: Any, arrays: list, used: set) -> Any:
    if x is None or type(x) in (bool, str, int, float):
        return x
    if type(x) is list:
        return [_decode(v, arrays, used) for v in x]
    if type(x) is not dict:
        raise NotAStateFile(f"unexpected JSON value of type {type(x).__name__}")
    if _TAG not in x:
        if any(k.startswith(_TAG) for k in x):
            raise NotAStateFile("a plain object with a '$' key (those are written in the tagged dict form)")
        return {k: _decode(v, arrays, used) for k, v in x.items()}
    tag = x[_TAG]
    fields = (
        {
            "tuple": {"items"},
            "dict": {"items"},
            "odict": {"items", "meta"},
            "float": {"value"},
            "int": {"hex"},
            "ndarray": {"index"},
            "npscalar": {"index"},
            "tensor": {"index", "dtype"},
        }.get(tag)
        if type(tag) is str
        else None
    )
    if fields is None:
        raise NotAStateFile(f"unknown tag {tag!r}")
    if not set(x) - {_TAG} <= fields:
        raise NotAStateFile(f"tag {tag!r} with unexpected fields {sorted(set(x) - {_TAG} - fields)}")
    if tag == "tuple":
        return tuple(_decode(_field(x, "items", list), arrays, used))
    if tag in ("dict", "odict"):
        out: dict = {} if tag == "dict" else OrderedDict()
        for pair in _field(x, "items", list):
            if type(pair) is not list or len(pair) != 2:
                raise NotAStateFile(f"{tag} item {pair!r} is not a [key, value] pair")
            k = _decode(pair[0], arrays, used)
            if not _key_ok(k):
                raise NotAStateFile(f"{tag} key of type {type(k).__name__}")
            if k in out:
                raise NotAStateFile(f"{tag} repeats the key {k!r}")
            out[k] = _decode(pair[1], arrays, used)
        if "meta" in x:
            out._metadata = _decode(x["meta"], arrays, used)  # type: ignore[attr-defined]
        return out
    if tag == "float":
        v = x.get("value")
        if v not in ("nan", "inf", "-inf"):
            raise NotAStateFile(f"float tag with value {v!r}")
        return float(v)
    if tag == "int":
        h = _field(x, "hex", str)
        if not h.lstrip("-").startswith("0x"):
            raise NotAStateFile(f"int tag with hex {h[:40]!r}")
        return int(h, 16)
    i = _field(x, "index", int)
    if not 0 <= i < len(arrays) or i in used:
        raise NotAStateFile(f"{tag} index {i} out of range or used twice")
    used.add(i)
    a = arrays[i]
    if tag == "ndarray":
        return a
    if tag == "npscalar":
        if a.ndim != 0:
            raise NotAStateFile(f"npscalar entry {i} has shape {a.shape}")
        return a[()]
    return _decode_tensor(a, _field(x, "dtype", str))


def _field(x: dict, key: str, kind: type) -> Any:
    v = x.get(key)
    if type(v) is not kind:
        raise NotAStateFile(f"tag {x.get(_TAG)!r}: field {key!r} is {type(v).__name__}, expected {kind.__name__}")
    return v


def _decode_tensor(a: np.ndarray, dtype: str) -> Any:
    torch = _torch()
    want = getattr(torch, dtype, None)
    if not isinstance(want, torch.dtype):
        raise NotAStateFile(f"tensor dtype {dtype!r}")
    # from_numpy needs native byte order; the copy also makes the tensor writable.
    t = torch.from_numpy(a.astype(a.dtype.newbyteorder("="), order="C", copy=True))
    if want == torch.bfloat16 and t.dtype == torch.int16:
        t = t.view(torch.bfloat16)
    if t.dtype != want:
        raise NotAStateFile(f"tensor entry of dtype {t.dtype} tagged {dtype!r}")
    return t
