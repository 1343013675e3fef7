"""Generative priors (ciprivacy.priors): shapes, training, save/load, resume, and the StyleGAN2
parts checked against their definitions."""

import math

import pytest
import torch
import torch.nn.functional as F

import ciprivacy.priors.train as T
from ciprivacy.io import load_torch
from ciprivacy.priors import PRIORS, load_prior, prior_settings, train_prior
from ciprivacy.priors.dcgan import DCGANDiscriminator, DCGANGenerator, WGANGPTrainer
from ciprivacy.priors.stylegan2 import (
    EqualLinear,
    ModulatedConv2d,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    StyleGAN2Trainer,
    blur,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (after conftest's two): these tensors are tiny, and while the other
    core is busy OpenMP's barrier makes two threads far slower (a 150k-element add here: 0.13 ms
    on one thread, 15 ms on two)."""
    torch.set_num_threads(1)
    yield


FAMILIES = ["dcgan", "wgan_gp", "stylegan2"]
TINY = {
    "dcgan": {"width": 8, "z_dim": 8, "bn_recalibration_batches": 2},
    "wgan_gp": {"width": 8, "z_dim": 8, "bn_recalibration_batches": 2, "n_critic": 2},
    "stylegan2": {"width": 16, "z_dim": 16, "n_mlp": 2, "d_reg_every": 2, "ema": 0.9},
}


def tiny(family, **extra):
    return {"family": family, "batch_size": 6, "hflip": True, "record_every": 1, **TINY[family], **extra}


@pytest.mark.parametrize("side", [8, 32, 64, 128])
def test_every_prior_makes_images_of_its_side_in_the_unit_range(side):
    for prior in (DCGANGenerator((3, side, side), 8, 4), StyleGAN2Generator((1, side, side), 8, 8, 1)):
        ws = prior.broadcast(prior.mapping(torch.randn(2, prior.z_dim)))
        x = prior.synthesis(ws)
        assert ws.shape == (2, prior.num_ws, prior.w_dim)
        assert x.shape == (2, *prior.image_shape) and x.min() >= 0 and x.max() <= 1
        assert prior.sample(3, torch.Generator().manual_seed(0)).shape == (3, *prior.image_shape)
    assert DCGANGenerator((3, side, side), 8, 4).num_ws == 1
    assert StyleGAN2Generator((3, side, side), 8, 8, 1).num_ws == 2 * int(math.log2(side)) - 2
    assert DCGANDiscriminator((3, side, side), 4)(torch.randn(2, 3, side, side)).shape == (2,)
    assert StyleGAN2Discriminator((3, side, side), 8)(torch.randn(4, 3, side, side)).shape == (4,)


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


def test_stylegan2_mapping_normalises_z_and_has_the_lr_multiplier():
    g = StyleGAN2Generator((3, 16, 16), 32, 16, 8)
    z = torch.randn(4, 32)
    torch.testing.assert_close(g.mapping(3 * z), g.mapping(z))  # pixel norm: the scale of z is dropped
    assert len(g.mapping_layers) == 8
    layer = g.mapping_layers[0]
    assert layer.lr_mul == 0.01 and layer.scale == pytest.approx(0.01 / math.sqrt(32))
    assert (layer.weight * layer.scale).std().item() == pytest.approx(1 / math.sqrt(32), rel=0.1)
    assert g.num_ws == 6 and len(g.noise_shapes()) == 5


def test_modulated_conv_equals_convolving_with_modulated_demodulated_weights():
    """The activation-side form equals the paper's per-sample weights w' = w s / ||w s||."""
    torch.manual_seed(0)
    for upsample in (False, True):
        conv = ModulatedConv2d(6, 5, 3, 8, upsample=upsample)
        x, w = torch.randn(3, 6, 7, 7), torch.randn(3, 8)
        s = conv.modulation(w)
        ref = []
        for i in range(3):
            wi = conv.weight * conv.scale * s[i][None, :, None, None]
            wi = wi * torch.rsqrt(wi.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
            if upsample:
                ref.append(blur(F.conv_transpose2d(x[i : i + 1], wi.transpose(0, 1), stride=2), conv.kernel4, (1, 1)))
            else:
                ref.append(F.conv2d(x[i : i + 1], wi, padding=1))
        out = conv(x, w)
        assert out.shape == (3, 5, 14 if upsample else 7, 14 if upsample else 7)
        torch.testing.assert_close(out, torch.cat(ref), atol=1e-5, rtol=1e-5)


def test_demodulation_keeps_unit_variance_whatever_the_style_scale():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 64, 3, 16)
    plain = ModulatedConv2d(64, 64, 3, 16, demodulate=False)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(4, 64, 32, 32)
    for scale in (0.1, 1.0, 10.0):
        w = scale * torch.randn(4, 16)
        with torch.no_grad():
            inner = conv(x, w)[:, :, 1:-1, 1:-1]  # away from the zero padding
            assert inner.std((1, 2, 3)).sub(1).abs().max() < 0.05
            if scale == 10.0:  # without demodulation the output grows with the style
                assert plain(x, w).std() > 3


def test_stylegan2_training_lowers_the_discriminator_loss_and_updates_the_ema():
    torch.manual_seed(0)
    s = prior_settings(tiny("stylegan2", steps=1, batch_size=8, lr=0.01)) | {"ema": 0.5, "amp": False}
    trainer = StyleGAN2Trainer((3, 16, 16), s, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    toy = torch.stack([xx, yy, xx * yy])[None].expand(8, -1, -1, -1)  # one smooth image
    losses = []
    for step in range(12):
        before = [p.detach().clone() for p in trainer.g_ema.parameters()]
        out = trainer.step(step, lambda: toy, gen)
        losses.append(out["d_loss"].item())
        assert ("r1" in out) == (step % 2 == 0)
        for p_ema, old, p in zip(trainer.g_ema.parameters(), before, trainer.g.parameters()):
            torch.testing.assert_close(p_ema, 0.5 * old + 0.5 * p)
    # 2 log 2 = 1.39 for a D that knows nothing; it learns to tell the toy image from G's
    assert losses[0] > 1.0 and sum(losses[-3:]) / 3 < 0.7 * losses[0]


def test_equal_linear_uses_the_he_constant_at_run_time():
    layer = EqualLinear(50, 10, bias_init=1.0)
    x = torch.randn(3, 50)
    torch.testing.assert_close(layer(x), x @ (layer.weight / math.sqrt(50)).t() + 1.0)


def test_prior_settings_reject_unknown_keys_and_need_one_length():
    with pytest.raises(KeyError, match="r1_gamma"):
        prior_settings({"family": "dcgan", "steps": 1, "r1_gamma": 10})
    with pytest.raises(ValueError, match="exactly one"):
        prior_settings({"family": "stylegan2"})
    with pytest.raises(KeyError, match="unknown generative prior"):
        prior_settings({"family": "vae", "steps": 1})
    assert PRIORS.names() == ["dcgan", "stylegan2", "wgan_gp"]


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
