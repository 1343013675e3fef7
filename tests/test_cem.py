"""CEM as a plug-in, NoPeek, and the CEM criterion: closed forms, references, resume."""

import math

import dcor
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import tiny_target_settings
from scipy.cluster.vq import kmeans2

import ciprivacy.defenses.cem as cem_module
import ciprivacy.target as T
from ciprivacy.data.batches import to_float
from ciprivacy.defenses import PLUGINS, create_defense, split_plugins
from ciprivacy.defenses.cem import CEM, VARIANCE_FLOOR, cem_loss, class_kmeans, pad_by_class
from ciprivacy.io import load_torch
from ciprivacy.metrics.cem import cem_metrics, gaussian_log_det_per_dim, mixture_mi_bound, mse_lower_bound
from ciprivacy.target import Target

with open("config.yaml") as fh:
    CONFIG = yaml.safe_load(fh)
SMALL = {"split_block": 2, "width": 8, "dropout": 0.5}
CEM_SETTINGS = {"lambda": 8.0, "sigma": 0.1, "clusters_per_class": 2, "kmeans_iters": 50}
BASE_SETTINGS = {**CONFIG["defenses"], "nopeek": {"weight": 0.1}}


def plugged(name, **cem):
    base, _ = split_plugins(name)
    return create_defense(name, **{**BASE_SETTINGS[base], "cem": {**CEM_SETTINGS, **cem}})


def toy_batch(n=64, classes=4, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = (torch.rand(n, 3, size, size, generator=gen) * 255).to(torch.uint8)
    return images, torch.arange(n) % classes


# --- the plug-in mechanics -------------------------------------------------------------------


def test_plugin_names_split_and_settings_reach_the_right_layer():
    assert split_plugins("noise+cem") == ("noise", ["cem"]) and split_plugins("noise") == ("noise", [])
    assert "cem" in PLUGINS
    d = plugged("noise+cem")
    assert isinstance(d, CEM) and d.name == "noise+cem" and "cem" not in d.base.settings
    assert d.settings == CEM_SETTINGS and not d.uses_unprotected_model and d.base.uses_unprotected_model
    assert "cem" not in create_defense("noise", sigma=0.8, cem=CEM_SETTINGS).settings
    with pytest.raises(KeyError, match="plug-in 'cem'"):
        create_defense("noise+cem", sigma=0.8)
    with pytest.raises(KeyError, match="unknown defense plug-in"):
        create_defense("noise+nothing", sigma=0.8)
    with pytest.raises(ValueError, match="sigma"):  # every CEM setting is required
        create_defense("noise+cem", sigma=0.8, cem={"lambda": 8})


def test_deployed_noise_is_the_base_perturbation_plus_the_cem_noise():
    d = plugged("noise+cem", sigma=0.6)
    clean, std = d.observe_parts(torch.zeros(2, 3))
    assert std == pytest.approx(math.hypot(BASE_SETTINGS["noise"]["sigma"], 0.6))
    torch.manual_seed(0)
    assert d.observe(torch.zeros(20000)).std().item() == pytest.approx(std, rel=0.03)
    assert plugged("siftfunnel+cem").observe_parts(torch.zeros(2, 3))[1] == pytest.approx(0.1)


# --- the loss ----------------------------------------------------------------------------------


def test_cem_loss_is_zero_on_the_centroids_and_grows_with_the_spread():
    gen = torch.Generator().manual_seed(0)
    centroids = torch.randn(3, 2, 5, generator=gen) * 10  # 3 classes, 2 clusters each, D = 5
    y = torch.arange(30) % 3
    cluster = (torch.arange(30) // 3) % 2
    on = centroids[y, cluster]
    assert cem_loss(on, y, centroids).item() == 0.0
    noise = torch.randn(30, 5, generator=gen)
    losses = [cem_loss(on + s * noise, y, centroids).item() for s in (1e-3, 1e-2, 1e-1, 1.0)]
    assert all(a < b for a, b in zip(losses, losses[1:])) and losses[0] > 0


def test_cem_loss_matches_its_closed_form_for_one_cluster_per_class():
    centroids = torch.zeros(2, 1, 3)
    # class 0: spread 0.1 in every dimension; class 1: on its centroid
    z = torch.tensor([[0.1, -0.1, 0.1], [-0.1, 0.1, -0.1], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    expected = (math.log1p(0.01 / VARIANCE_FLOOR) + 0.0) / 2  # averaged over the two classes
    assert cem_loss(z, y, centroids).item() == pytest.approx(expected, rel=1e-6)


def test_cem_term_reaches_the_edge_only():
    torch.manual_seed(0)
    d = plugged("nopeek+cem")
    model = d.build("cnn", 4, (3, 16, 16), SMALL)
    images, labels = toy_batch(32, size=16)
    d.start_epoch(model, images, labels, 0, 16)
    x = to_float(images)
    cem_loss(model.edge(x), labels, d.centroids).backward()
    assert all(p.grad is None for p in model.cloud.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.edge.parameters())

    # The full loss: cloud gradients are those of the defense's own loss alone.
    def grads(lam):
        model.zero_grad(set_to_none=True)
        d.lambda_ = lam
        torch.manual_seed(1)  # same noise on the link and dropout in the cloud
        d.loss(model, x, labels, 0).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    with_cem, without = grads(8.0), grads(0.0)
    for name, g in with_cem.items():
        if name.startswith("cloud."):
            torch.testing.assert_close(g, without[name], msg=name)
    assert any(not torch.allclose(g, without[n]) for n, g in with_cem.items() if n.startswith("edge."))


# --- K-means -----------------------------------------------------------------------------------


def test_per_class_kmeans_matches_scipy_from_the_same_start():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(2, 3, 2))  # 2 classes, 3 blobs each, in 2-D
    points, labels = [], []
    for c in range(2):
        for j in range(3):
            points.append(centres[c, j] + rng.normal(0, 1, size=(7 + 3 * j, 2)))
            labels += [c] * (7 + 3 * j)
    x = torch.tensor(np.concatenate(points), dtype=torch.float32)
    y = torch.tensor(labels)
    perm = torch.from_numpy(rng.permutation(len(y)))
    x, y = x[perm], y[perm]
    padded, mask = pad_by_class(x, y, 2)
    ours = class_kmeans(padded, mask, 3, 50)
    for c in range(2):
        data = x[y == c].double().numpy()
        ref, _ = kmeans2(data, data[:3].copy(), iter=50, minit="matrix")
        np.testing.assert_allclose(ours[c].numpy(), ref, rtol=1e-4, atol=1e-4)
    # warm-started from its own result it stays put
    torch.testing.assert_close(class_kmeans(padded, mask, 3, 50, init=ours), ours)


# --- NoPeek ------------------------------------------------------------------------------------


def test_nopeek_adds_the_weighted_distance_correlation_of_the_dcor_package():
    torch.manual_seed(0)
    d = create_defense("nopeek", weight=0.1)
    model = d.build("cnn", 4, (3, 16, 16), SMALL).eval()
    images, labels = toy_batch(24, size=16)
    x = to_float(images)
    with torch.no_grad():
        z = model.edge(x)
        extra = d.loss(model, x, labels, 0) - F.cross_entropy(model(x), labels)
    ref = dcor.distance_correlation(x.flatten(1).double().numpy(), z.flatten(1).double().numpy())
    assert extra.item() == pytest.approx(0.1 * ref, rel=1e-4)


# --- the CEM criterion -------------------------------------------------------------------------


def test_mixture_bound_matches_the_gaussian_channel_capacity():
    gen = torch.Generator().manual_seed(0)
    std, sigma = torch.tensor([0.5, 1.0, 2.0, 0.1]), 0.3
    z = torch.randn(40000, 4, generator=gen) * std
    y = torch.arange(40000) % 2  # two classes, identical Gaussians: H(k) = log 2
    exact = 0.5 * torch.log1p(std**2 / sigma**2).sum().item()
    padded, mask = pad_by_class(z, y, 2)
    bound = mixture_mi_bound(padded, mask, sigma, k=1, iters=50)
    assert bound["cluster_entropy"] == pytest.approx(math.log(2), rel=1e-6)
    assert bound["mi_bound"] == pytest.approx(math.log(2) + exact, rel=0.02)


def test_mse_bound_matches_its_closed_form_on_gaussian_inputs():
    """x ~ N(0, diag(lam)) sent as z~ = x + N(0, sigma^2): h(x|z~) is Gaussian with variances
    lam sigma^2 / (lam + sigma^2), so the bound is their geometric mean, below the MMSE (their
    arithmetic mean)."""
    gen = torch.Generator().manual_seed(1)
    lam, sigma = torch.tensor([0.02, 0.05, 0.1, 0.01, 0.08, 0.03]), 0.2
    x = torch.randn(40000, 6, generator=gen) * lam.sqrt()
    log_det, reason = gaussian_log_det_per_dim(x)
    assert reason is None and log_det == pytest.approx(lam.log().mean().item(), abs=0.03)
    padded, mask = pad_by_class(x, torch.zeros(40000, dtype=torch.long), 1)
    mi = mixture_mi_bound(padded, mask, sigma, k=1, iters=50)["mi_bound"]
    posterior = lam * sigma**2 / (lam + sigma**2)
    bound = mse_lower_bound(log_det, mi, 6)
    assert bound == pytest.approx(posterior.log().mean().exp().item(), rel=0.03)
    assert bound <= posterior.mean().item()


def test_the_mse_bound_is_withheld_where_it_cannot_be_estimated():
    assert gaussian_log_det_per_dim(torch.rand(10, 3, 4, 4))[0] is None  # n <= d
    low_rank = torch.rand(500, 2).repeat(1, 4)  # 8 dims in a 2-D subspace
    value, reason = gaussian_log_det_per_dim(low_rank)
    assert value is None and "singular" in reason


@pytest.mark.parametrize("name", ["noise", "unprotected", "noise+cem"])
def test_cem_metrics_of_a_target(name):
    torch.manual_seed(0)
    base, plugins = split_plugins(name)
    d = plugged(name) if plugins else create_defense(name, **BASE_SETTINGS[name])
    model = d.build("cnn", 4, (1, 16, 16), SMALL).eval()
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(400, 1, 16, 16, generator=gen) * 255).to(torch.uint8)  # n > d = 256
    labels = torch.arange(400) % 4
    out = cem_metrics(Target(model, d, {"num_classes": 4}), images, labels, {"batch_size": 64, "cem_sigma": 0.05})
    assert out["cem_mi_bound"] > 0 and out["cem_mi_bound"] >= out["cem_cluster_entropy"] > 0
    if base == "noise":
        assert out["cem_noise"] == "deployed" and out["cem_sigma"] == pytest.approx(d.observe_parts(torch.zeros(1))[1])
        x = to_float(images).flatten(1)
        assert out["cem_mse_bound_reason"] is None
        assert 0 < out["cem_mse_bound"] <= x.var(0).log().mean().exp().item()  # I >= 0
    else:
        assert out["cem_noise"] == "evaluation" and out["cem_sigma"] == 0.05
        assert out["cem_mse_bound"] is None and "no Gaussian noise" in out["cem_mse_bound_reason"]


def test_kmeans_and_bound_a_class_at_a_time_equal_all_classes_at_once(monkeypatch):
    """Features go a few classes at a time (CHUNK_BYTES) to bound memory at paper scale; one class
    per chunk gives the same centroids, and the same bound, as every class at once. Class 3 has
    no samples (it keeps a zero centroid and adds nothing to the bound)."""
    torch.manual_seed(0)
    d = plugged("noise+cem")
    model = d.build("cnn", 4, (1, 16, 16), SMALL).eval()
    images, _ = toy_batch(300, classes=4, size=16)
    images = images[:, :1]
    labels = torch.arange(300) % 3
    target = Target(model, d, {"num_classes": 4})
    settings = {"batch_size": 64}

    def run():
        d.centroids = None
        d.start_epoch(model, images, labels, 0, 64)
        return d.centroids.clone(), cem_metrics(target, images, labels, settings)

    whole, whole_metrics = run()
    chunks = []
    real_chunks = cem_module.class_chunks
    monkeypatch.setattr(cem_module, "CHUNK_BYTES", 1)  # every class its own chunk
    monkeypatch.setattr(cem_module, "class_chunks", lambda *a, **kw: chunks.append(1) or real_chunks(*a, **kw))
    split, split_metrics = run()
    assert [len(g) for g, _, _ in real_chunks(model.edge, images, labels, 4, 64)] == [1, 1, 1, 1]
    assert chunks, "start_epoch goes through class_chunks"
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
    assert not split[3].any()
    assert split_metrics["cem_mi_bound"] == pytest.approx(whole_metrics["cem_mi_bound"], rel=1e-5)
    assert split_metrics["cem_cluster_entropy"] == pytest.approx(whole_metrics["cem_cluster_entropy"], rel=1e-6)


# --- every plugged defense trains ---------------------------------------------------------------


@pytest.mark.parametrize("base", ["noise", "dropping", "nopeek", "siftfunnel"])
def test_every_plugged_defense_trains_a_step_and_observes(base):
    torch.manual_seed(0)
    d = plugged(f"{base}+cem")
    model = d.build("cnn", 4, (3, 32, 32), {**SMALL, "width": 32})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model, opt = d.setup(model, opt, train_size=64, train={"epochs": 2, "batch_size": 16})
    images, labels = toy_batch(64)
    gen = torch.Generator().manual_seed(0)
    d.start_epoch(model, images, labels, 0, 16)
    assert d.centroids.shape[:2] == (4, 2)
    model.train()
    x, y = next(iter(d.batches(images, labels, 16, gen)))
    loss = d.loss(model, x, y, epoch=0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        z = d.observe(model.edge(to_float(images[:4])))
        logits = d.forward(model, to_float(images[:4]))
    assert z.ndim == 4 and logits.shape == (4, 4) and torch.isfinite(logits).all()
    state = d.state_dict()
    again = plugged(f"{base}+cem")
    again.load_state_dict(state)
    torch.testing.assert_close(again.centroids, d.centroids)


def test_loss_before_the_first_kmeans_is_an_error():
    d = plugged("noise+cem")
    model = d.build("cnn", 4, (3, 16, 16), SMALL)
    x, y = toy_batch(8, size=16)
    with pytest.raises(RuntimeError, match="start_epoch"):
        d.loss(model, to_float(x), y, 0)


# --- resume ------------------------------------------------------------------------------------

EPOCHS, BATCHES_PER_EPOCH = 2, 3


class Killed(Exception):
    pass


def resume_settings():
    return tiny_target_settings("noise+cem", {"sigma": 0.3, "cem": dict(CEM_SETTINGS)}, EPOCHS)


def test_noise_cem_resumes_with_the_same_centroids_and_weights(tiny_photos, tmp_path, monkeypatch):
    full = T.train_target(tiny_photos, str(tmp_path / "full.pt"), resume_settings())

    calls = []
    real = T.augment

    def augment(*args, **kwargs):
        calls.append(1)
        if len(calls) == BATCHES_PER_EPOCH + 2:
            raise Killed
        return real(*args, **kwargs)

    ckpt = tmp_path / "ckpt.pt"
    monkeypatch.setattr(T, "augment", augment)
    with pytest.raises(Killed):
        T.train_target(tiny_photos, str(tmp_path / "resumed.pt"), resume_settings(), checkpoint=str(ckpt))
    monkeypatch.setattr(T, "augment", real)
    saved = load_torch(ckpt)
    assert saved["epoch"] == 1 and saved["defense"]["centroids"].shape[:2] == (full.meta["num_classes"], 2)
    starts = []
    real_kmeans = cem_module.class_kmeans

    def kmeans(padded, mask, k, iters, init=None):
        starts.append(init)
        return real_kmeans(padded, mask, k, iters, init)

    monkeypatch.setattr(cem_module, "class_kmeans", kmeans)
    resumed = T.train_target(tiny_photos, str(tmp_path / "resumed.pt"), resume_settings(), checkpoint=str(ckpt))

    assert len(starts) == EPOCHS - 1, "the resumed run clusters once per remaining epoch"
    torch.testing.assert_close(starts[0], saved["defense"]["centroids"], msg="warm start from the checkpoint")
    torch.testing.assert_close(resumed.defense.centroids, full.defense.centroids, rtol=1e-5, atol=1e-6)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for name, tensor in a.items():
        torch.testing.assert_close(b[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
