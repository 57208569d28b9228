"""The documentation site stays true to the code.

- docs/configuration.md is generated from the schema's field docs; it must be current;
- every `file.py:name` the pages point at (the reading map, the how-to pages) exists.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from per_exp import config, config_reference

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# `per_exp/engine/trainer.py:Engine._step`, `tests/test_x.py::test_y`
CODE_REF = re.compile(r"`([\w/]+\.py)(?::{1,2})([A-Za-z_][\w.]*)`")


def schema_classes() -> list[type]:
    """Config and every group dataclass it holds (not other dataclasses of the module)."""
    classes = [cls for _, cls, _ in config_reference.sections()]
    assert config.Config in classes and config.SamplerConfig in classes
    return classes


def test_every_schema_field_has_a_doc():
    missing = [
        f"{cls.__name__}.{f.name}"
        for cls in schema_classes()
        for f in dataclasses.fields(cls)
        if config_reference.schema_class(f) is None and not f.metadata.get("doc")
    ]
    assert missing == [], f"fields without a doc (declare them with setting(default, doc)): {missing}"


def test_configuration_page_is_current():
    committed = config_reference.PAGE.read_text()
    assert committed == config_reference.render(), (
        "docs/configuration.md is stale: run `python -m per_exp.config_reference --write`"
    )


def test_the_page_names_every_key_with_its_doc_and_composed_default():
    page = config_reference.render()
    for cls in schema_classes():
        for f in dataclasses.fields(cls):
            if "doc" in f.metadata:
                assert f.metadata["doc"].split("|")[0][:30] in page.replace("\\|", "|"), f"{cls.__name__}.{f.name}"
    # defaults come from the composed tree, not the dataclass: env=cartpole_v0 sets CartPole-v0
    assert "| `env.id` | `str` | `CartPole-v0` |" in page
    # a group option is described by what it changes
    assert "`sampler.name=rank`, `sampler.alpha=0.7`, `sampler.beta0=0.5`" in page


def test_check_mode_fails_on_a_stale_page(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text(config_reference.PAGE.read_text().replace("episode cap", "episode limit"))
    monkeypatch.setattr(config_reference, "PAGE", stale)
    monkeypatch.setattr(config_reference, "ROOT", tmp_path)
    assert config_reference.main(["--check"]) == 1
    assert "is stale" in capsys.readouterr().err
    assert config_reference.main(["--write"]) == 0
    assert config_reference.main(["--check"]) == 0


def test_a_field_without_a_doc_is_refused():
    @dataclasses.dataclass
    class Bare:
        x: int = 1

    with pytest.raises(ValueError, match=r"Bare\.x has no doc"):
        config_reference.keys_table("", Bare, {"x": 1})


def _defined_names(path: Path) -> set[str]:
    """Top-level functions and classes, and `Class.method`, of a Python file."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}.{sub.name}")
    return names


def _code_refs() -> list[tuple[str, str, str]]:
    refs = []
    for page in sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]:
        for path, name in CODE_REF.findall(page.read_text()):
            refs.append((page.name, path, name))
    return refs


def test_pages_point_at_code_that_exists():
    refs = _code_refs()
    assert len(refs) > 20  # the reading map alone names more; an empty scan would prove nothing
    broken = []
    for page, path, name in refs:
        file = ROOT / path
        if not file.is_file():
            broken.append(f"{page}: {path} does not exist")
        elif name not in _defined_names(file):
            broken.append(f"{page}: {path} defines no {name}")
    assert broken == []


def test_the_reference_check_itself_catches_a_moved_function(tmp_path):
    names = _defined_names(ROOT / "per_exp/engine/trainer.py")
    assert "Engine._step" in names
    assert "Engine.no_such_step" not in names
