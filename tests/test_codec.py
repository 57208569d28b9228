"""The data-only state container: exact round trips, clear refusals, and no code run on reading."""

from __future__ import annotations

import io
import pickle
import random
import zipfile
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from per_exp import codec
from tests.support.crafted import WritesMarker, manifest, npy, same, zip_entries


def roundtrip(x):
    return codec.loads(codec.dumps(x))


# ------------------------------------------------------------------ round trips
def test_python_numpy_and_torch_rng_states_restore():
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    py, npy, tt = random.getstate(), np.random.get_state(), torch.get_rng_state()
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    back = roundtrip({"python": py, "numpy": npy, "torch": tt})
    same(back, {"python": py, "numpy": npy, "torch": tt})
    random.setstate(back["python"])  # these refuse a list where they gave a tuple
    np.random.set_state(back["numpy"])
    torch.set_rng_state(back["torch"])
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected


def test_generator_states_with_128_bit_ints_restore():
    for bg in (
        np.random.PCG64(3),
        np.random.PCG64DXSM(3),
        np.random.Philox(3),
        np.random.SFC64(3),
        np.random.MT19937(3),
    ):
        g = np.random.Generator(bg)
        g.random(5)
        state = g.bit_generator.state
        back = roundtrip(state)
        same(back, state)
        g2 = np.random.Generator(type(bg)())
        g2.bit_generator.state = back
        assert g2.random() == g.random()


def test_module_and_optimizer_state_dicts_round_trip():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(3, 4)).sum().backward()
    opt.step()
    sd, osd = net.state_dict(), opt.state_dict()
    assert any(type(k) is int for k in osd["state"])  # the case a JSON-only format loses
    back = roundtrip({"net": sd, "opt": osd})
    same(back, {"net": sd, "opt": osd})
    net2 = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-3)
    net2.load_state_dict(back["net"])
    opt2.load_state_dict(back["opt"])
    x = torch.randn(5, 4)
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).sum().backward()
        o.step()
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)


def test_awkward_scalars_keys_and_arrays():
    value = {
        "floats": [0.1, -0.0, float("nan"), float("inf"), float("-inf"), 5e-324, 1.7976931348623157e308],
        "ints": [0, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 3**200, -(7**300)],
        "mixed": (True, False, None, 1, 1.0, "1", ("nested", (1,))),
        "$dollar": "a key the tagged form must escape",
        "unicode \u00e9\u2603": "\U0001f600 \ud800",
        "np scalars": [
            np.float32(0.1),
            np.float64(2.5),
            np.int8(-3),
            np.uint64(2**64 - 1),
            np.bool_(True),
            np.complex64(1 + 2j),
        ],
        "arrays": [
            np.arange(12, dtype=np.float32).reshape(3, 4),
            np.asfortranarray(np.arange(12.0).reshape(3, 4)),
            np.arange(6, dtype=">i4"),
            np.zeros((0, 3)),
            np.array(5),
            np.array([True, False]),
            np.array([1 + 1j], dtype=np.complex128),
            np.arange(10)[::3],
        ],
        "tensors": [
            torch.arange(5, dtype=torch.int64),
            torch.tensor(3.5),
            torch.randn(2, 3).t(),
            torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
            torch.tensor([True]),
        ],
        1: "int key",
        2.5: "float key",
        None: "None key",
        (1, "a"): "tuple key",
        False: "bool key",
        "od": OrderedDict([("b", 1), ("a", 2)]),
    }
    same(roundtrip(value), value)


def test_ordered_dict_keeps_torch_metadata():
    sd = torch.nn.BatchNorm1d(3).state_dict()
    assert hasattr(sd, "_metadata")
    back = roundtrip(sd)
    assert type(back) is OrderedDict and back._metadata == sd._metadata
    torch.nn.BatchNorm1d(3).load_state_dict(back)


def test_arrays_come_back_writable_and_independent():
    a = np.arange(4.0)
    b = roundtrip([a, a])
    b[0][0] = 99.0
    assert b[1][0] == 0.0 and a[0] == 0.0


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)
)
key = st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
tree = st.recursive(
    json_leaf,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.lists(kids, max_size=4).map(tuple),
        st.dictionaries(key, kids, max_size=4),
        st.dictionaries(st.text(max_size=5), kids, max_size=4),
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(tree)
def test_any_nested_value_round_trips_exactly(value):
    same(roundtrip(value), value)


# ------------------------------------------------------------------ refusals on writing
Point = namedtuple("Point", "x y")


class Custom:
    pass


@pytest.mark.parametrize(
    "value, words",
    [
        ({"a": [np.array([object()], dtype=object)]}, ["value['a'][0]", "dtype object"]),
        ({"s": np.array(["x"])}, ["value['s']", "<U1"]),
        ({"set": {1, 2}}, ["value['set']", "builtins.set"]),
        ({"b": b"bytes"}, ["value['b']", "builtins.bytes"]),
        ({"c": Custom()}, ["value['c']", "Custom"]),
        ({"p": Point(1, 2)}, ["value['p']", "Point"]),
        ({"param": torch.nn.Parameter(torch.zeros(2))}, ["value['param']", "Parameter"]),
        ({frozenset(): 1}, ["dict key", "frozenset"]),
        ({"dt": np.array(["2020-01-01"], dtype="datetime64[D]")}, ["value['dt']", "datetime64"]),
        ({"rec": np.zeros(2, dtype=[("a", "f4")])}, ["value['rec']", "numeric dtypes only"]),
    ],
)
def test_writing_refuses_what_it_cannot_hold_exactly(value, words):
    with pytest.raises(codec.UnsupportedValue) as e:
        codec.dumps(value)
    for w in words:
        assert w in str(e.value)


def test_writing_refuses_a_cycle():
    a: list = []
    a.append(a)
    with pytest.raises(codec.UnsupportedValue, match="contains itself"):
        codec.dumps(a)


# ------------------------------------------------------------------ refusals on reading
def test_the_canary_really_runs_code_when_unpickled(tmp_path):
    # Control for the refusals below: these payloads are live.
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(WritesMarker(marker)))
    assert marker.exists()
    marker2 = tmp_path / "control2"
    np.load(io.BytesIO(npy(np.array([WritesMarker(marker2)], dtype=object), allow_pickle=True)), allow_pickle=True)
    assert marker2.exists()


def test_pickles_and_torch_files_are_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payloads = {
        "pickle": pickle.dumps({"format_version": 1, "x": WritesMarker(marker)}),
    }
    buf = io.BytesIO()
    torch.save({"format_version": 1, "x": WritesMarker(marker)}, buf)
    payloads["torch.save"] = buf.getvalue()
    for what, data in payloads.items():
        with pytest.raises(codec.NotAStateFile):
            codec.loads(data)
        assert not marker.exists(), what


def test_object_dtype_entry_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = npy(np.array([WritesMarker(marker)], dtype=object), allow_pickle=True)
    data = zip_entries({codec.MANIFEST: manifest({"$": "ndarray", "index": 0}, n=1), "arrays/0.npy": evil})
    with pytest.raises(codec.NotAStateFile, match="dtype object"):
        codec.loads(data)
    assert not marker.exists()


def test_every_truncation_of_a_valid_file_is_refused():
    data = codec.dumps({"a": np.arange(50.0), "b": [1, 2.5, "x"], "t": torch.ones(3)})
    for cut in sorted(
        {1, 4, 22, 100, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1} | set(range(0, len(data), 97))
    ):
        with pytest.raises(codec.NotAStateFile):
            codec.loads(data[:cut])


good_array = npy(np.arange(3.0))


@pytest.mark.parametrize(
    "entries, words",
    [
        ({"other.json": b"{}"}, "no manifest.json"),
        ({codec.MANIFEST: b"[1]"}, "does not name container"),
        ({codec.MANIFEST: manifest(1, version=999)}, "container version 999"),
        ({codec.MANIFEST: manifest(1, container="torch")}, "does not name container"),
        ({codec.MANIFEST: manifest(1), "extra.py": b"print(1)"}, "unexpected ['extra.py']"),
        ({codec.MANIFEST: manifest({"$": "ndarray", "index": 0}, n=1)}, "missing ['arrays/0.npy']"),
        ({codec.MANIFEST: manifest(1, n=1), "arrays/0.npy": good_array}, "not referenced"),
        (
            {
                codec.MANIFEST: manifest([{"$": "ndarray", "index": 0}, {"$": "ndarray", "index": 0}], n=1),
                "arrays/0.npy": good_array,
            },
            "used twice",
        ),
        ({codec.MANIFEST: manifest({"$": "pickle", "data": "gASV"})}, "unknown tag 'pickle'"),
        ({codec.MANIFEST: manifest({"$": "tuple", "items": [], "call": "os.system"})}, "unexpected fields"),
        ({codec.MANIFEST: manifest({"$": "float", "value": "1e308"})}, "float tag"),
        ({codec.MANIFEST: manifest({"$": "int", "hex": "12"})}, "int tag"),
        ({codec.MANIFEST: manifest({"$": "dict", "items": [[[1], 2]]})}, "key of type list"),
        ({codec.MANIFEST: manifest({"$": "dict", "items": [[1, 2], [1, 3]]})}, "repeats the key"),
        ({codec.MANIFEST: manifest({"$x": 1})}, "plain object with a '$' key"),
        (
            {codec.MANIFEST: b'{"container": "per_exp.state", "version": 1, "arrays": 0, "tree": NaN}'},
            "bare constant NaN",
        ),
        (
            {
                codec.MANIFEST: b'{"container": "per_exp.state", "container": "per_exp.state", '
                b'"version": 1, "arrays": 0, "tree": 1}'
            },
            "repeats a key",
        ),
        (
            {codec.MANIFEST: manifest({"$": "tensor", "index": 0, "dtype": "int64"}, n=1), "arrays/0.npy": good_array},
            "tagged 'int64'",
        ),
        (
            {
                codec.MANIFEST: manifest({"$": "tensor", "index": 0, "dtype": "Tensor"}, n=1),
                "arrays/0.npy": good_array,
            },
            "tensor dtype 'Tensor'",
        ),
        (
            {codec.MANIFEST: manifest({"$": "ndarray", "index": 0}, n=1), "arrays/0.npy": good_array + b"x"},
            "data bytes for shape",
        ),
        (
            {codec.MANIFEST: manifest({"$": "ndarray", "index": 0}, n=1), "arrays/0.npy": good_array[:-1]},
            "data bytes for shape",
        ),
        (
            {codec.MANIFEST: manifest({"$": "ndarray", "index": 0}, n=1), "arrays/0.npy": npy(np.array(["s"]))},
            "dtype <U1",
        ),
        (
            {codec.MANIFEST: manifest({"$": "npscalar", "index": 0}, n=1), "arrays/0.npy": good_array},
            "npscalar entry 0 has shape",
        ),
        ({codec.MANIFEST: manifest(1, n=-1)}, "not a count"),
        ({codec.MANIFEST: b"[" * 100000 + b"]" * 100000}, "RecursionError"),
    ],
)
def test_crafted_containers_are_refused_with_the_reason(entries, words):
    with pytest.raises(codec.NotAStateFile) as e:
        codec.loads(zip_entries(entries))
    assert words in str(e.value)


def test_a_huge_declared_shape_is_refused_before_allocating():
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    npy = header.getvalue()  # magic and header, then none of the 8 TB it declares
    data = zip_entries({codec.MANIFEST: manifest({"$": "ndarray", "index": 0}, n=1), "arrays/0.npy": npy})
    with pytest.raises(codec.NotAStateFile, match="data bytes for shape"):
        codec.loads(data)


def test_compressed_entries_and_duplicate_names_are_refused():
    with pytest.raises(codec.NotAStateFile, match="compressed"):
        codec.loads(zip_entries({codec.MANIFEST: manifest(1)}, compress=zipfile.ZIP_DEFLATED))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(codec.MANIFEST, manifest(1))
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr(codec.MANIFEST, manifest(2))
    with pytest.raises(codec.NotAStateFile, match="same name"):
        codec.loads(buf.getvalue())


def test_max_bytes_bounds_what_is_read():
    data = codec.dumps(np.zeros(1000))
    assert codec.loads(data, max_bytes=10_000).shape == (1000,)
    with pytest.raises(codec.NotAStateFile, match="more than the 100 allowed"):
        codec.loads(data, max_bytes=100)
