"""Generative priors (ciprivacy.priors): shapes, training, save/load and resume."""

import math

import pytest
import torch

import ciprivacy.priors.train as T
from ciprivacy.io import load_torch
from ciprivacy.priors import PRIORS, load_prior, prior_settings, train_prior
from ciprivacy.priors.dcgan import DCGANDiscriminator, DCGANGenerator, WGANGPTrainer


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (after conftest's two): these tensors are tiny, and while the other
    core is busy OpenMP's barrier makes two threads far slower (a 150k-element add here: 0.13 ms
    on one thread, 15 ms on two)."""
    torch.set_num_threads(1)
    yield


FAMILIES = ["dcgan", "wgan_gp"]
TINY = {
    "dcgan": {"width": 8, "z_dim": 8, "bn_recalibration_batches": 2},
    "wgan_gp": {"width": 8, "z_dim": 8, "bn_recalibration_batches": 2, "n_critic": 2},
}


def tiny(family, **extra):
    return {"family": family, "batch_size": 6, "hflip": True, **TINY[family], **extra}


@pytest.mark.parametrize("side", [8, 32, 64, 128])
def test_every_prior_makes_images_of_its_side_in_the_unit_range(side):
    for prior in (DCGANGenerator((3, side, side), 8, 4), DCGANGenerator((1, side, side), 8, 4)):
        ws = prior.broadcast(prior.mapping(torch.randn(2, prior.z_dim)))
        x = prior.synthesis(ws)
        assert ws.shape == (2, prior.num_ws, prior.w_dim)
        assert x.shape == (2, *prior.image_shape) and x.min() >= 0 and x.max() <= 1
        assert prior.sample(3, torch.Generator().manual_seed(0)).shape == (3, *prior.image_shape)
    assert DCGANGenerator((3, side, side), 8, 4).num_ws == 1
    assert DCGANDiscriminator((3, side, side), 4)(torch.randn(2, 3, side, side)).shape == (2,)


def test_dcgan_follows_the_recipe_and_its_mapping_is_the_identity():
    g = DCGANGenerator((3, 64, 64), 100, 64)
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(100, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
    z = torch.randn(4, 100)
    assert torch.equal(g.mapping(z), z)
    critic = DCGANDiscriminator((3, 64, 64), 64, batchnorm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d | torch.nn.LayerNorm) for m in critic.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in DCGANDiscriminator((3, 64, 64), 64).modules()) == 3


def test_wgan_gp_penalty_is_the_squared_distance_of_the_gradient_norm_from_one():
    trainer = WGANGPTrainer((1, 8, 8), prior_settings(tiny("wgan_gp", steps=1)) | {"amp": False}, torch.device("cpu"))
    a = torch.randn(64, generator=torch.Generator().manual_seed(0))
    trainer.d = lambda x: x.flatten(1) @ a  # a linear critic: its gradient is a everywhere
    gp = trainer.gradient_penalty(torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8), torch.Generator())
    assert gp.item() == pytest.approx((a.norm().item() - 1) ** 2, rel=1e-5)


def test_prior_settings_reject_unknown_keys_and_need_one_length():
    with pytest.raises(KeyError, match="r1_gamma"):
        prior_settings({"family": "dcgan", "steps": 1, "r1_gamma": 10})
    with pytest.raises(ValueError, match="exactly one"):
        prior_settings({"family": "wgan_gp"})
    with pytest.raises(KeyError, match="unknown generative prior"):
        prior_settings({"family": "vae", "steps": 1})
    assert PRIORS.names() == ["dcgan", "wgan_gp"]


@pytest.mark.parametrize("family", FAMILIES)
def test_trained_prior_round_trips_through_its_file(family, tiny_photos, tmp_path):
    path = tmp_path / "prior.pt"
    prior = train_prior(tiny_photos, str(path), tiny(family, steps=3))
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"state_dict", "meta"} and blob["meta"]["family"] == family
    meta = blob["meta"]
    assert len(meta["history"]) >= 1 and math.isfinite(meta["final"]["d_loss"])
    assert meta["sample_nearest_aux_mse"] > 0 and meta["aux_nearest_aux_mse"] > 0
    loaded = load_prior(str(path))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    ws = prior.broadcast(prior.mapping(torch.randn(3, prior.z_dim)))
    noise = [torch.randn(3, *shape) for shape in prior.noise_shapes()] or None
    with torch.no_grad():
        torch.testing.assert_close(loaded.synthesis(ws, noise), prior.eval().synthesis(ws, noise))
    torch.testing.assert_close(loaded.mean_w(), prior.mean_w())


class Killed(Exception):
    pass


def _count_batches(monkeypatch, kill_at=None):
    calls, real = [], T.real_batch

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == kill_at:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "real_batch", wrapper)
    return calls


@pytest.mark.parametrize("family", FAMILIES)
def test_killed_prior_training_resumes_to_the_weights_of_an_uninterrupted_run(
    family, tiny_photos, tmp_path, monkeypatch
):
    settings = tiny(family, epochs=3)
    calls = _count_batches(monkeypatch)
    train_prior(tiny_photos, str(tmp_path / "full.pt"), settings)
    per_epoch = len(calls) // 3

    ckpt = tmp_path / "ckpt.pt"
    _count_batches(monkeypatch, kill_at=per_epoch + 2)  # in the second epoch
    with pytest.raises(Killed):
        train_prior(tiny_photos, str(tmp_path / "resumed.pt"), settings, checkpoint=str(ckpt))
    assert load_torch(ckpt)["step"] >= 1
    calls = _count_batches(monkeypatch)
    train_prior(tiny_photos, str(tmp_path / "resumed.pt"), settings, checkpoint=str(ckpt))
    assert len(calls) == 2 * per_epoch, "the rerun skips the finished epoch"
    assert not ckpt.exists()
    a, b = load_torch(tmp_path / "full.pt"), load_torch(tmp_path / "resumed.pt")
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert [h["d_loss"] for h in b["meta"]["history"]] == pytest.approx([h["d_loss"] for h in a["meta"]["history"]])
