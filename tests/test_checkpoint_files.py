"""Checkpoint files on disk: data only, atomic, and anything else refused, moved aside and never run."""

from __future__ import annotations

import functools
import io
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from per_exp import checkpoint, codec
from per_exp import contract as C
from per_exp.engine.trainer import run_one
from tests.support.cli import compose
from tests.support.crafted import WritesMarker, manifest, npy, same, zip_entries


@functools.cache
def _trainer_state() -> dict:
    """A real run's state (rank sampler: the most arrays), made once per module."""
    cfg = compose(["sampler=rank", "max_episodes=3", "capacity=300", "checkpoint.every_episodes=2"])
    got: dict = {}
    run_one(cfg, on_checkpoint=lambda state: got.setdefault("s", state))
    return got["s"]


def _payload(state: dict) -> dict:
    return {
        "config_hash": "h",
        "experiment_id": "1",
        "run_id": "r",
        "trainer": state,
        "rows": [{C.EPISODE_RETURN: 9.0}],
    }


def _ckpt(tmp_path: Path) -> Path:
    return checkpoint.path_for(tmp_path, "1", "h")


def _refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused checkpoint" in r.getMessage()]


def test_a_trainer_checkpoint_is_a_zip_of_json_and_npy_and_reads_back_exactly(tmp_path):
    path = _ckpt(tmp_path)
    checkpoint.save(path, _payload(_trainer_state()))
    assert path.name == "checkpoint.zip" and [p.name for p in path.parent.iterdir()] == ["checkpoint.zip"]
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert names[0] == "manifest.json" and all(n.startswith("arrays/") and n.endswith(".npy") for n in names[1:])
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    back = checkpoint.load(path)
    same(back, {"format_version": checkpoint.FORMAT_VERSION, **_payload(_trainer_state())})


def test_save_refuses_non_data_and_keeps_the_previous_file(tmp_path):
    path = _ckpt(tmp_path)
    checkpoint.save(path, _payload(_trainer_state()))
    before = path.read_bytes()
    with pytest.raises(codec.UnsupportedValue, match=r"value\['trainer'\]\['extra'\].*Custom"):
        checkpoint.save(path, _payload({**_trainer_state(), "extra": type("Custom", (), {})()}))
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.zip"]  # no temp file left


def _assert_refused_and_kept(path: Path, content: bytes, caplog, marker: Path) -> Path:
    assert not marker.exists()
    assert not path.exists()
    aside = [p for p in path.parent.iterdir() if p.name.startswith(path.name + checkpoint.REFUSED_INFIX)]
    assert len(aside) == 1 and aside[0].read_bytes() == content  # evidence, untouched
    lines = [m for m in _refusals(caplog) if str(path) in m]
    assert len(lines) == 1 and "\n" not in lines[0] and aside[0].name in lines[0], lines
    return aside[0]


def _evil_payloads(marker: Path) -> dict[str, bytes]:
    evil = {"format_version": checkpoint.FORMAT_VERSION, "run_id": "r", "x": WritesMarker(marker)}
    buf = io.BytesIO()
    torch.save(evil, buf)
    obj_npy = npy(np.array([WritesMarker(marker)], dtype=object), allow_pickle=True)
    good = codec.dumps({"format_version": checkpoint.FORMAT_VERSION, "run_id": "r", "a": np.arange(100.0)})
    return {
        "pickle": pickle.dumps(evil),
        "torch.save": buf.getvalue(),
        "object-dtype npy in a valid container": zip_entries(
            {
                codec.MANIFEST: manifest({"format_version": 2, "a": {"$": "ndarray", "index": 0}}, n=1),
                "arrays/0.npy": obj_npy,
            }
        ),
        "truncated": good[: len(good) // 2],
        "format version 1 container": codec.dumps({"format_version": 1, "run_id": "r"}),
        "no version": codec.dumps([1, 2]),
        "empty": b"",
    }


@pytest.mark.parametrize("what", list(_evil_payloads(Path("/nonexistent"))))
def test_anything_but_a_current_checkpoint_is_refused_moved_aside_and_never_run(tmp_path, caplog, what):
    marker = tmp_path / "pwned"
    content = _evil_payloads(marker)[what]
    path = _ckpt(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(path) is None
    _assert_refused_and_kept(path, content, caplog, marker)
    assert checkpoint.load(path) is None  # and the next launch finds nothing


def test_a_legacy_pickle_checkpoint_is_moved_aside_unread_and_a_current_one_still_loads(tmp_path, caplog):
    marker = tmp_path / "pwned"
    path = _ckpt(tmp_path)
    checkpoint.save(path, _payload(_trainer_state()))
    legacy = path.with_name("checkpoint.pt")
    buf = io.BytesIO()
    torch.save({"format_version": 1, "x": WritesMarker(marker)}, buf)
    legacy.write_bytes(buf.getvalue())
    with caplog.at_level(logging.WARNING):
        got = checkpoint.load(path)
    assert got is not None and got["run_id"] == "r"
    aside = _assert_refused_and_kept(legacy, buf.getvalue(), caplog, marker)
    assert "pickle" in _refusals(caplog)[0]
    checkpoint.remove(path)  # a finished run: the evidence keeps the folder
    assert not path.exists() and aside.exists()


def test_an_unopenable_path_is_left_in_place(tmp_path, caplog):
    path = _ckpt(tmp_path)
    path.mkdir(parents=True)  # a folder where the file should be
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(path) is None
    assert path.is_dir() and not _refusals(caplog)
    assert any("cannot open checkpoint" in r.getMessage() for r in caplog.records)
