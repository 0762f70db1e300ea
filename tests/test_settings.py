"""Environment configuration: empty variables fall back to the defaults."""
from pathlib import Path

from sdhrnet.settings import Settings


def test_empty_variables_mean_unset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDHRNET_HOME", "")
    monkeypatch.setenv("REDIS_URL", "")
    s = Settings()
    assert s.home == Path(tmp_path) / ".sdhrnet" and s.redis_url is None


def test_set_variables_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("SDHRNET_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    s = Settings()
    assert s.home == tmp_path / "h" and s.redis_url == "redis://127.0.0.1:6379/3"
