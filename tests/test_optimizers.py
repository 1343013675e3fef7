"""Our optimizers are torch.optim's, bit for bit, without importing PyTorch's compiler: a
training job and an attack job start ~1.2 s sooner."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_target_settings

from ciprivacy import optimizers

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ("Adam", {"lr": 1e-2, "betas": (0.5, 0.999), "fused": True}),
    ("Adam", {"lr": 1e-2, "amsgrad": True, "eps": 1e-6}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
    ("SGD", {"lr": 1e-2, "momentum": 0.9}),
]


def train(optimizer_class, kwargs, steps=6, swap_at=None):
    """A small model trained ``steps`` steps; at ``swap_at`` the optimizer is rebuilt from its
    state dict (as a resumed job does)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = optimizer_class(model.parameters(), **kwargs)
    gen = torch.Generator().manual_seed(1)
    for i in range(steps):
        if i == swap_at:
            state = opt.state_dict()
            opt = optimizer_class(model.parameters(), **kwargs)
            opt.load_state_dict(state)
        x = torch.randn(5, 8, generator=gen)
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], opt.state_dict()


@pytest.mark.parametrize("name, kwargs", CASES)
def test_each_optimizer_updates_exactly_as_torch_optim_and_keeps_its_state_dict(name, kwargs):
    ours, ours_state = train(getattr(optimizers, name), kwargs, swap_at=3)
    torch_params, torch_state = train(getattr(torch.optim, name), kwargs, swap_at=3)
    assert issubclass(getattr(optimizers, name), getattr(torch.optim, name))
    assert all(torch.equal(a, b) for a, b in zip(ours, torch_params))
    assert ours_state["param_groups"] == torch_state["param_groups"]
    for i, state in torch_state["state"].items():
        assert all(torch.equal(ours_state["state"][i][k], v) for k, v in state.items())


def test_an_optimizer_records_no_graph_of_its_update():
    x = torch.ones(3, requires_grad=True)
    opt = optimizers.SGD([x], lr=0.1)
    x.sum().backward()
    opt.step()
    assert x.grad_fn is None and x.requires_grad


@pytest.mark.parametrize("defense", ["unprotected", "siftfunnel"])
def test_training_and_attacking_a_target_never_import_the_compiler(tiny_photos, tmp_path, defense):
    """In a fresh Python, as a job runs: torch._dynamo stays unimported through a target's
    training (Adam, its scheduler, a checkpoint) and a black-box attack (the inverse network's
    Adam); SiftFunnel's SE blocks do not import torchvision (which imports torch._dynamo). If
    PyTorch changes how its optimizers guard their methods, this fails: the pipeline still runs,
    each job ~1.2 s slower."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    sift = {**config["defenses"]["siftfunnel"], "se_reduction": [4, 4], "cbam_ratio": 2}
    settings = tiny_target_settings(defense, sift if defense == "siftfunnel" else {}, 1)
    attack = {
        **config["attacks"]["blackbox"],
        **{"epochs": 1, "batch_size": 8, "amp": False, "seed": 0, "device": "cpu"},
        **{"channels_last": False, "n_samples": 2},
    }
    script = f"""
import json, sys
from ciprivacy.target import train_target
from ciprivacy.attacks import run_attack
settings, attack = json.loads({json.dumps(json.dumps([settings, attack]))})
train_target({str(tiny_photos)!r}, {str(tmp_path / "model.pt")!r}, settings, checkpoint={str(tmp_path / "ck.pt")!r})
out = {str(tmp_path)!r}
run_attack("blackbox", out + "/model.pt", {str(tiny_photos)!r}, out + "/m.json", out + "/s.pt", attack)
print("dynamo imported:", "torch._dynamo" in sys.modules, "torchvision" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dynamo imported: False False" in done.stdout
