"""The package layers of ARCHITECTURE.md, as import-linter contracts in pyproject.toml: a change that makes the
torch-free core import torch, or the API import the trainer, fails here."""
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch):
    monkeypatch.chdir(ROOT)  # the contracts live in pyproject.toml at the repository root
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0, \
        "an import breaks a layer contract: run `lint-imports` for which one and the import chain"


def test_the_contracts_cover_every_package_of_ours():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    ours = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    assert ours == set(config["root_packages"]), "a new top-level package needs its place in the contracts"
