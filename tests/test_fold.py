"""BatchNorm folding: the frozen edge computes the same function, and rMLE gets the same images."""

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import ciprivacy.attacks.rmle as rmle
from ciprivacy.defenses import create_defense
from ciprivacy.models import create_model
from ciprivacy.models.fold import fold_batchnorm

SIFTFUNNEL = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())["defenses"]["siftfunnel"]


def _with_running_stats(model: nn.Module) -> nn.Module:
    """Running statistics and affine parameters far from their initial identity map."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))
    return model.eval()


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize(
    "build",
    [
        lambda: create_model("cnn", 10, (3, 32, 32), width=8),
        lambda: create_model("resnet18", 10, (3, 32, 32), split_block=4),  # with a downsample shortcut
        lambda: create_defense("siftfunnel", **SIFTFUNNEL).build("cnn", 10, (3, 32, 32), {"width": 8}),
    ],
    ids=["cnn", "resnet18", "siftfunnel"],
)
def test_folded_edge_computes_the_same_features_and_input_gradients(build):
    torch.manual_seed(0)
    edge = _with_running_stats(build().edge)
    before = _batchnorms(edge)
    folded = fold_batchnorm(edge)
    assert before > 0 and _batchnorms(edge) == before  # the original is untouched
    assert _batchnorms(folded) < before
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    z, z2 = edge(x), folded(x2)
    assert torch.allclose(z, z2, rtol=1e-4, atol=1e-4 * z.abs().max().item())
    z.pow(2).sum().backward()
    z2.pow(2).sum().backward()
    assert torch.allclose(x.grad, x2.grad, rtol=1e-3, atol=1e-3 * x.grad.abs().max().item())


def test_cnn_and_resnet_edges_keep_no_batchnorm():
    for model in (
        create_model("cnn", 10, (3, 32, 32), width=8),
        create_model("resnet18", 10, (3, 32, 32), split_block=4),
    ):
        assert _batchnorms(fold_batchnorm(model.edge.eval())) == 0


def test_folding_a_model_in_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(create_model("cnn", 10, (3, 32, 32), width=8).edge)


def test_rmle_reconstructs_the_same_images_with_the_folded_edge(monkeypatch):
    torch.manual_seed(0)
    edge = _with_running_stats(create_model("cnn", 10, (3, 32, 32), width=8).edge)
    for p in edge.parameters():
        p.requires_grad_(False)
    z = edge(torch.rand(3, 3, 32, 32))
    settings = {
        "iterations": 5,
        "optimizer": "adam",
        "lr": 0.05,
        "momentum": 0.9,
        "loss": "per_sample",
        "tv": "l1",
        "tv_weight": 0.01,
        "init": "gray",
        "clamp": "every_step",
        "amp": False,
    }
    calls = []
    monkeypatch.setattr(rmle, "fold_batchnorm", lambda m: calls.append(m) or fold_batchnorm(m))
    folded = rmle.rmle_reconstruct(edge, z, (3, 32, 32), settings, torch.Generator().manual_seed(0), progress=False)
    assert calls == [edge], "rMLE folds the frozen edge it is given"
    monkeypatch.setattr(rmle, "fold_batchnorm", lambda m: m)
    plain = rmle.rmle_reconstruct(edge, z, (3, 32, 32), settings, torch.Generator().manual_seed(0), progress=False)
    # Adam divides by the gradient's size, so a pixel whose gradient is ~0 may step either way on a
    # rounding difference: compare the images on average (a wrong fold moves every pixel).
    assert (folded - plain).abs().mean() < 1e-4
