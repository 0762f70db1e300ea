"""Environment configuration: empty variables fall back to the defaults."""
from pathlib import Path

from sdhrnet.settings import ServiceSettings, Settings


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


def test_the_service_section_reads_the_same_variables(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDHRNET_MAX_FACES", "7")
    monkeypatch.setenv("SDHRNET_PRELOAD_DATASETS", "wflw, 300w")
    monkeypatch.setenv("SDHRNET_DEFAULT_MODEL_DIR", "")
    service = Settings().service
    assert isinstance(service, ServiceSettings) and service.max_faces == 7
    assert service.preload_list == ["wflw", "300w"] and service.default_model_dir is None


def test_an_empty_preload_list_still_preloads_nothing(monkeypatch):
    monkeypatch.setenv("SDHRNET_PRELOAD_DATASETS", "")
    assert Settings().service.preload_list == [] and ServiceSettings(preload_datasets="wflw").preload_list == ["wflw"]
    monkeypatch.delenv("SDHRNET_PRELOAD_DATASETS")
    assert Settings().service.preload_list == ["300w"]
