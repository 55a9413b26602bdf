"""import_from_string: "module:attribute" strings, and the errors for bad ones."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from carpinus.importer import ImportFromStringError, import_from_string
from tests.support import apps


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two importable modules: one fine, one that imports something missing."""
    (tmp_path / "imp_good.py").write_text(
        "class Outer:\n    class Inner:\n        value = 'nested'\n\napp = object()\n")
    (tmp_path / "imp_broken.py").write_text("import imp_missing_dependency\napp = 1\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    for name in ("imp_good", "imp_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield tmp_path
    for name in ("imp_good", "imp_broken"):
        sys.modules.pop(name, None)


def test_non_string_passes_through() -> None:
    """An object that is not a string is returned as is (an app given directly)."""
    assert import_from_string(apps.hello) is apps.hello


def test_module_attribute() -> None:
    """'package.module:attr' returns the attribute."""
    assert import_from_string("tests.support.apps:hello") is apps.hello


def test_dotted_attribute(modules: Path) -> None:
    """The attribute part may be dotted: 'module:Outer.Inner.value'."""
    assert import_from_string("imp_good:Outer.Inner.value") == "nested"


@pytest.mark.parametrize("bad", ["imp_good", "imp_good:", ":app", ""])
def test_bad_format(bad: str) -> None:
    """Without both a module and an attribute around ':' the error shows the expected form."""
    with pytest.raises(ImportFromStringError,
                       match=f'Import string "{bad}" must be in format "<module>:<attribute>"'):
        import_from_string(bad)


def test_missing_module() -> None:
    """A module that does not exist is named in the error."""
    with pytest.raises(ImportFromStringError, match='Could not import module "imp_nowhere"'):
        import_from_string("imp_nowhere:app")


def test_missing_attribute(modules: Path) -> None:
    """A missing attribute (even deep in a dotted path) names the attribute and module."""
    with pytest.raises(ImportFromStringError,
                       match='Attribute "nope" not found in module "imp_good"'):
        import_from_string("imp_good:nope")
    with pytest.raises(ImportFromStringError,
                       match='Attribute "Outer.Missing" not found in module "imp_good"'):
        import_from_string("imp_good:Outer.Missing")


def test_missing_dependency_is_not_masked(modules: Path) -> None:
    """If the app module exists but imports something missing, that real error surfaces."""
    with pytest.raises(ModuleNotFoundError) as info:
        import_from_string("imp_broken:app")
    assert not isinstance(info.value, ImportFromStringError)
    assert info.value.name == "imp_missing_dependency"


def test_error_inside_module_propagates(modules: Path) -> None:
    """An exception raised while the app module runs is not turned into an import error."""
    (modules / "imp_raises.py").write_text("raise RuntimeError('module-level failure')\n")
    try:
        with pytest.raises(RuntimeError, match="module-level failure"):
            import_from_string("imp_raises:app")
    finally:
        sys.modules.pop("imp_raises", None)
