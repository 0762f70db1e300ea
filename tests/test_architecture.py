"""The package layers of ARCHITECTURE.md, as import-linter contracts in pyproject.toml: a change that makes the
torch-free core import torch, or the API import the trainer, fails here."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    # in a process of its own: import-linter reconfigures logging (it would silence the loggers of later tests)
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"an import breaks a layer contract:\n{result.stdout[-3000:]}"
    assert "0 broken" in result.stdout


def test_the_contracts_cover_every_package_of_ours():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    ours = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    assert ours == set(config["root_packages"]), "a new top-level package needs its place in the contracts"
