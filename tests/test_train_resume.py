"""A run that crashes mid-epoch and is started again ends exactly like an uninterrupted one."""
import pytest
import torch

pytestmark = pytest.mark.slow


class Crash(RuntimeError):
    pass


def test_crashed_and_resumed_run_equals_uninterrupted(tmp_path, monkeypatch, shared_data):
    from sdhrnet.settings import get_settings

    monkeypatch.setenv("SDHRNET_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    from trainer import jobs
    from trainer.tracking import client

    base = {"dataset": "300w", "data_root": str(shared_data / "300w"), "preset": "tiny",
            "overrides": {"checkpoint_every_steps": 2}}
    straight = jobs.run_slim({**base, "run_name": "straight"})

    # 4 steps per epoch; checkpoints at global steps 2, 4 (also the epoch end) and 6
    def crash_at_step_7(info):
        if info.get("step") == 3 and info.get("epoch") == 2:  # reported 1-based: global step 7 of 8
            raise Crash("simulated worker crash")

    with pytest.raises(Crash):
        jobs.run_slim({**base, "run_name": "crashy"}, jobs.JobHooks(progress=crash_at_step_7))
    crashed = client().search_runs([client().get_experiment_by_name("sdhrnet-300w").experiment_id],
                                   filter_string="tags.`sdhrnet.resume_key` = 'crashy'")
    assert [r.info.status for r in crashed] == ["FAILED"]
    ckpt = get_settings().checkpoint_dir / crashed[0].info.run_id / "last.pt"
    saved = torch.load(ckpt, weights_only=False)
    assert (saved["epoch"], saved["step"]) == (1, 2), "resume starts mid-epoch, from the global step-6 checkpoint"

    resumed = jobs.run_slim({**base, "run_name": "crashy"})
    assert resumed.run_id == crashed[0].info.run_id, "the same MLflow run continues"
    assert resumed.metrics == straight.metrics
    a = torch.load(straight.model_dir / "weights.pt")
    b = torch.load(resumed.model_dir / "weights.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma = client().get_run(straight.run_id).data.metrics
    mb = client().get_run(resumed.run_id).data.metrics
    for key in ("train_mse", "val_nme", "final_nme"):
        assert ma[key] == pytest.approx(mb[key], rel=1e-9, abs=1e-12), key
    get_settings.cache_clear()
