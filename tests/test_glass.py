"""GLASS / GLASS++ (attacks/glass.py) on a toy generator and a toy edge: the search recovers a
known latent code, the encoder's start beats a random one, results do not depend on batching,
and the scenarios resume from their checkpoints."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_target_settings
from torch import nn

import ciprivacy.attacks.glass as G
from ciprivacy.checkpoint import Resume
from ciprivacy.data import load_prepared
from ciprivacy.priors import Prior, load_prior, train_prior
from ciprivacy.target import load_target, train_target


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (after conftest's two): these tensors are tiny, and while the other
    core is busy OpenMP's barrier makes two threads far slower (a 150k-element add here: 0.13 ms
    on one thread, 15 ms on two)."""
    torch.set_num_threads(1)
    yield


class ToyPrior(Prior):
    """A fixed random generator: mapping z -> Az + b, image = tanh(bilinear-upsampled linear map
    of the two style vectors) (+ noise_scale x noise input)."""

    def __init__(self, noise_scale: float = 0.0):
        super().__init__()
        self.z_dim = self.w_dim = 6
        self.num_ws, self.image_shape, self.noise_scale = 2, (3, 16, 16), noise_scale
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.eye(6) + 0.3 * torch.randn(6, 6, generator=g))
        self.b = nn.Parameter(0.1 * torch.randn(6, generator=g))
        self.basis = nn.Parameter(torch.randn(12, 3 * 4 * 4, generator=g) / math.sqrt(12))

    def mapping(self, z):
        return z @ self.a.t() + self.b

    def noise_shapes(self):
        return [(1, 16, 16)] if self.noise_scale else []

    def synthesis_raw(self, ws, noise=None):
        coarse = (ws.flatten(1) @ self.basis).view(-1, 3, 4, 4)
        x = torch.tanh(F.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False))
        if self.noise_scale:
            noise = noise if noise is not None else [torch.randn(ws.shape[0], 1, 16, 16)]
            x = x + self.noise_scale * noise[0]
        return x


def toy_edge():
    torch.manual_seed(0)
    edge = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Tanh())
    return edge.eval().requires_grad_(False)


EXACT = dict(
    restarts=8,
    z_steps=60,
    lr=0.05,
    tv_weight=0.0,
    l2_weight=0.0,
    kl_weight=0.0,
    w_steps=200,
    w_lr=0.02,
    jitter=0.0,
    select="last",
)


def true_images(prior, n, seed):
    z = torch.randn(n, prior.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return prior.synthesis(prior.broadcast(prior.mapping(z)))


def test_glass_search_recovers_the_image_of_a_known_latent_code():
    prior, edge = ToyPrior(), toy_edge()
    x = true_images(prior, 4, seed=1)
    rec, loss = G.glass_search(edge, edge(x), prior, EXACT, torch.Generator().manual_seed(0), progress=False)
    assert rec.shape == x.shape and rec.min() >= 0 and rec.max() <= 1
    assert loss.shape == (4,) and loss.max() < 1e-5
    assert F.mse_loss(rec, x).item() < 1e-5
    # with GLASS's image priors (TV, L2, KL) and jitter: pulled towards smoother, darker images
    # (this toy's feature loss is small next to them), still far closer than the mean image
    priors = {**EXACT, "tv_weight": 0.01, "l2_weight": 0.01, "kl_weight": 1.0, "jitter": 0.02}
    rec2, _ = G.glass_search(edge, edge(x), prior, priors, torch.Generator().manual_seed(0), progress=False)
    assert sum(G.tv_l2(rec2)).sum() < sum(G.tv_l2(rec)).sum()
    assert F.mse_loss(rec2, x).item() < 0.1 * F.mse_loss(x.mean(0, keepdim=True).expand_as(x), x).item()


def test_random_search_and_best_feature_loss_selection():
    prior, edge = ToyPrior(), toy_edge()
    x = true_images(prior, 3, seed=2)
    gen = torch.Generator().manual_seed(0)
    random_only = {**EXACT, "z_steps": 0, "restarts": 64, "w_steps": 0}
    rec0, loss0 = G.glass_search(edge, edge(x), prior, random_only, gen, progress=False)
    assert torch.allclose(G.feature_mse(edge(rec0), edge(x)), loss0, atol=1e-6)
    one = {**random_only, "restarts": 1}
    _, loss1 = G.glass_search(edge, edge(x), prior, one, gen, progress=False)
    assert loss0.mean() < loss1.mean()  # the best of 64 draws beats one draw
    noisy = {**EXACT, "z_steps": 5, "w_steps": 40, "jitter": 0.5, "jitter_until": 1.0}
    _, last = G.glass_search(edge, edge(x), prior, noisy, gen, progress=False)
    _, best = G.glass_search(edge, edge(x), prior, {**noisy, "select": "best_feature_loss"}, gen, progress=False)
    assert (best <= last + 1e-7).all()
    with pytest.raises(ValueError, match="select"):
        G.glass_search(edge, edge(x), prior, {**EXACT, "select": "mean"}, gen, progress=False)


def test_search_result_does_not_depend_on_batch_or_chunks():
    """Every image draws z, jitter and noise from its own stream (seed, index): alone or in a
    batch, in chunks of one image or all at once, it gets the same reconstruction."""
    prior, edge = ToyPrior(noise_scale=0.05), toy_edge()
    x = true_images(prior, 3, seed=3)
    s = {**EXACT, "restarts": 4, "z_steps": 10, "w_steps": 15, "jitter": 0.05, "jitter_until": 0.5}
    batch, loss = G.glass_search(edge, edge(x), prior, s, torch.Generator().manual_seed(7), progress=False)
    alone, loss1 = G.glass_search(
        edge, edge(x[1:2]), prior, s, torch.Generator().manual_seed(7), index=torch.tensor([1]), progress=False
    )
    torch.testing.assert_close(alone, batch[1:2], atol=1e-5, rtol=0)
    torch.testing.assert_close(loss1, loss[1:2], atol=1e-6, rtol=1e-4)
    chunked, _ = G.glass_search(
        edge, edge(x), prior, {**s, "chunk": 4}, torch.Generator().manual_seed(7), progress=False
    )
    torch.testing.assert_close(chunked, batch, atol=1e-5, rtol=0)
    other_seed, _ = G.glass_search(edge, edge(x), prior, s, torch.Generator().manual_seed(8), progress=False)
    assert not torch.allclose(other_seed, batch)


def test_glass_losses_match_the_formulas_of_their_code():
    x = torch.rand(2, 3, 5, 4)
    tv, l2 = G.tv_l2(x)
    y = x[1:] * 2 - 1  # their TV (optimize_Gan_adam_z_w+.py:80-88) for one image
    h = (y[:, :, 1:, :] - y[:, :, :-1, :]).pow(2).sum() / (3 * 4 * 4)
    w = (y[:, :, :, 1:] - y[:, :, :, :-1]).pow(2).sum() / (3 * 5 * 3)
    assert tv[1].item() == pytest.approx((h + w).item(), rel=1e-5)
    assert l2[1].item() == pytest.approx(y.pow(2).mean().item(), rel=1e-5)
    z = torch.randn(2, 100_000, generator=torch.Generator().manual_seed(0))
    z[1] = z[1] * 2 + 1  # mean 1, variance 4: KL = -0.5 (1 + log 4 - 1 - 4) = 1.807
    kl = G.kl_standard_normal(z)
    assert kl[0].item() == pytest.approx(0.0, abs=1e-3)
    assert kl[1].item() == pytest.approx(-0.5 * (1 + math.log(4) - 1 - 4), abs=2e-2)


def test_encoder_maps_every_feature_shape_to_w_plus_offsets():
    for z_shape, side in [
        ((16, 4, 4), 16),
        ((128, 8, 8), 32),
        ((256, 16, 16), 64),
        ((64, 64, 64), 64),
        ((8, 32, 32), 64),
    ]:
        enc = G.LatentEncoder(
            z_shape, (3, side, side), num_ws=2 * int(math.log2(side)) - 2, w_dim=16, width=8, units=[1, 1, 1, 1]
        )
        out = enc(torch.randn(2, *z_shape))
        assert out.shape == (2, 2 * int(math.log2(side)) - 2, 16)
    glass_size = G.LatentEncoder((128, 8, 8), (3, 64, 64), num_ws=10, w_dim=512)  # GLASS's faces setting
    ups = [m for m in glass_size.input_layer if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in ups] == [(128, 128), (128, 64), (64, 3)]
    assert [len(stage) for stage in glass_size.stages] == [3, 6, 6, 3]
    with pytest.raises(ValueError, match="encoder needs"):
        G.LatentEncoder((16, 3, 3), (3, 16, 16), 6, 16)


def test_encoder_start_beats_a_random_start():
    prior, edge = ToyPrior(), toy_edge()
    aux = (true_images(prior, 256, seed=4) * 255).round().to(torch.uint8)
    val = (true_images(prior, 32, seed=5) * 255).round().to(torch.uint8)
    enc = G.LatentEncoder((8, 8, 8), (3, 16, 16), prior.num_ws, prior.w_dim, width=8, units=[1, 1, 1, 1])
    settings = {"epochs": 15, "batch_size": 32, "lr": 3e-3}
    enc, history = G.train_encoder(enc, edge, prior, aux, settings, torch.Generator().manual_seed(0), val)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert min(h["val_mse"] for h in history) == pytest.approx(G.encoder_mse(enc, edge, prior, val, 32), rel=1e-5)

    x = true_images(prior, 8, seed=6)
    z = edge(x)
    with torch.no_grad():
        encoded = enc(z) + prior.mean_w()
        random = prior.broadcast(prior.mapping(torch.randn(8, prior.z_dim, generator=torch.Generator().manual_seed(9))))
    gen = torch.Generator().manual_seed(0)
    for steps in (0, 20):
        s = {"pp_steps": steps, "pp_lr": 0.01}
        rec_e, loss_e = G.glass_search(edge, z, prior, s, gen, start_ws=encoded, progress=False)
        rec_r, loss_r = G.glass_search(edge, z, prior, s, gen, start_ws=random, progress=False)
        assert loss_e.mean() < 0.5 * loss_r.mean()
        assert F.mse_loss(rec_e, x) < F.mse_loss(rec_r, x)


# ---------------------------------------------------------------- the scenarios on a tiny target

PRIOR = {"family": "dcgan", "steps": 4, "batch_size": 6, "width": 8, "z_dim": 8, "bn_recalibration_batches": 2}
SCENARIO = {
    "restarts": 2,
    "z_steps": 3,
    "w_steps": 4,
    "num_images": 5,
    "batch_size": 2,
    "pp_steps": 4,
    "encoder": {"width": 8, "units": [1, 1, 1, 1], "epochs": 2, "batch_size": 6},
}


@pytest.fixture(scope="module")
def tiny_attack(tiny_photos, tmp_path_factory):
    """A tiny CNN target and a tiny DCGAN prior on the 16 x 16 photos."""
    root = tmp_path_factory.mktemp("glass")
    train_target(tiny_photos, str(root / "target.pt"), tiny_target_settings("noise", {"sigma": 0.1}, 1))
    train_prior(tiny_photos, str(root / "prior.pt"), PRIOR)
    data = load_prepared(tiny_photos)
    return str(root / "target.pt"), str(root / "prior.pt"), data.split("aux")[0], data.split("test")[0]


class Killed(Exception):
    pass


def _run(scenario, tiny_attack, monkeypatch=None, kill_at=None, ckpt=None):
    target_path, prior_path, aux, test = tiny_attack
    torch.manual_seed(0)
    calls, real = [], G.glass_search

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) == kill_at:
            raise Killed
        return real(*args, **kwargs)

    if monkeypatch is not None:
        monkeypatch.setattr(G, "glass_search", counting)
    resume = Resume(str(ckpt), {"attack": "test"}) if ckpt else None
    target = load_target(target_path)
    settings = {**SCENARIO, "prior": prior_path}
    return scenario(target, aux, test, settings, torch.Generator().manual_seed(3), resume=resume), calls


@pytest.mark.parametrize("scenario", [G.glass_attack, G.glass_pp_attack])
def test_scenarios_attack_the_first_images_and_resume_after_a_kill(scenario, tiny_attack, tmp_path, monkeypatch):
    (rec, n, state, extra), calls = _run(scenario, tiny_attack, monkeypatch)
    assert n == 5 and rec.shape == (5, 3, 16, 16) and len(calls) == 3
    assert rec.min() >= 0 and rec.max() <= 1 and math.isfinite(extra["feature_mse"])
    if scenario is G.glass_pp_attack:
        assert set(state) == {"state_dict", "meta"} and len(extra["encoder_history"]) == 2
        enc = G.LatentEncoder(**{k: v for k, v in state["meta"].items()})
        enc.load_state_dict(state["state_dict"])
    else:
        assert state is None

    ckpt = tmp_path / "attack.pt"
    with pytest.raises(Killed):
        _run(scenario, tiny_attack, monkeypatch, kill_at=2, ckpt=ckpt)
    assert ckpt.exists()
    (again, _, _, extra2), calls = _run(scenario, tiny_attack, monkeypatch, ckpt=ckpt)
    assert len(calls) == 2, "the rerun skips the finished batch"
    torch.testing.assert_close(again, rec, atol=1e-5, rtol=0)
    assert extra2["feature_mse"] == pytest.approx(extra["feature_mse"], rel=1e-4)


def test_scenario_rejects_a_prior_of_another_image_shape(tiny_attack):
    target_path, prior_path, aux, test = tiny_attack
    prior = load_prior(prior_path)
    prior.image_shape = (3, 32, 32)
    with pytest.raises(ValueError, match="prior makes"):
        G.glass_attack(load_target(target_path), aux, test, SCENARIO, torch.Generator(), prior=prior)
