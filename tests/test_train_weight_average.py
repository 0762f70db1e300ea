"""ema_decay: each student's moving average of weights, scored, kept and resumed beside it."""
import pytest
import torch
from torch import nn

from sdhrnet.train_config import make_config
from trainer.distill import moving_average


def test_the_average_moves_by_one_minus_the_decay_and_carries_the_bn_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    average = moving_average(net, 0.9)
    average.update_parameters(net)  # the first update copies
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net.train()(torch.randn(8, 3, 5, 5) * 3 + 2)  # moves the running statistics
    after = net.state_dict()
    average.update_parameters(net)
    for key in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        assert not torch.allclose(before[key], after[key]), key
        assert torch.allclose(average.module.state_dict()[key], 0.9 * before[key] + 0.1 * after[key], atol=1e-6), key


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_a_decay_outside_0_to_1_is_refused(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        make_config("tiny", "300w", {"ema_decay": decay})


class Crash(RuntimeError):
    pass


@pytest.mark.slow
def test_averages_are_scored_kept_and_resumed_exactly(settings_env, tmp_path, shared_data):
    settings_env(SDHRNET_HOME=tmp_path / "home", SDHRNET_OFFLINE_RUNS=tmp_path / "runs", MLFLOW_TRACKING_URI=None)
    from trainer import jobs
    from trainer.offline_runs import find_runs

    params = {"dataset": "300w", "data_root": str(shared_data / "300w"), "preset": "tiny", "slim_run": "s-hrnet-300w",
              "overrides": {"checkpoint_every_steps": 2, "ema_decay": 0.6,
                            **dict.fromkeys(("use_teacher", "use_peer", "masked_inputs"), False)}}
    straight = jobs.run_distill({**params, "run_name": "straight"})

    def crash_in_epoch_2(info):
        if info.get("epoch") == 2 and info.get("step") == 3:
            raise Crash("simulated crash")

    with pytest.raises(Crash):
        jobs.run_distill({**params, "run_name": "crashy"}, jobs.JobHooks(progress=crash_in_epoch_2))
    resumed = jobs.run_distill({**params, "run_name": "crashy"})

    def history(run_name, key):
        [run] = find_runs(tmp_path / "runs", run_name)
        return [m["value"] for m in run.metrics() if m["key"] == key]

    raw, averaged = history("straight", "val_nme_s1"), history("straight", "val_nme_s1_ema")
    assert len(raw) == len(averaged) == 2, "the average is scored each epoch beside its student"
    assert raw != averaged, "the average is a model of its own"
    assert history("crashy", "val_nme_s1_ema") == averaged, "the average resumes from the checkpoint bit for bit"
    assert resumed.metrics == straight.metrics
    assert straight.card["best_student"] in ("s1", "s1_ema")
    [run] = find_runs(tmp_path / "runs", "straight")
    kept = run.artifacts / "models" / "s1_ema"
    assert (kept / "model.onnx").is_file() and (kept / "model_card.json").is_file()
