"""Writing a model folder must not disturb the network a stage is still using."""
import torch

from landmarks.datasets import get_info
from trainer.model_files import load_model, write_model_files
from trainer.nets import build_network


def test_writing_leaves_the_callers_network_as_it_was(tmp_path):
    net = build_network("s-hrnet-300w", 68).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    card = write_model_files(tmp_path, net, dataset="300w", info=get_info("300w"), input_size=64, config={},
                             metrics={"nme": 0.1}, kind="test", run_id=None)
    assert net.training, "a training stage keeps training after logging a side model"
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    loaded, read = load_model(tmp_path)
    assert read == card and all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())
