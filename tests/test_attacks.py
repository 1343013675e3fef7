import pytest
import torch
from torch import nn

from ciprivacy.attacks import InverseNet, rmle_reconstruct, total_variation, train_inverse_network
from ciprivacy.attacks import authors_inverse as A
from ciprivacy.attacks.inverse import query_once
from ciprivacy.metrics import reconstruction_quality

# The test-split protocol these tests were written for; the rigorous one is tested below.
INVERSE = dict(
    lr=1e-2,
    betas=(0.5, 0.999),
    amsgrad=False,
    scheduler_factor=0.5,
    scheduler_patience=20,
    scheduler_on="test",
    selection="best_test",
    validation_fraction=0.0,
    perturbation="fresh",
    epochs=4,
    batch_size=16,
    eval_every=1,
    amp=False,
)
RMLE = dict(
    iterations=200,
    optimizer="adam",
    lr=0.05,
    momentum=0.9,
    loss="per_sample",
    tv="l1",
    tv_weight=0.0,
    init="gray",
    clamp="every_step",
    amp=False,
)


def tiny_edge():
    torch.manual_seed(0)
    # Tanh keeps the map injective (a ReLU edge this small discards half of its 1,024 outputs).
    edge = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.Tanh(), nn.Conv2d(32, 16, 3, padding=1, stride=2), nn.Tanh()
    )
    for p in edge.parameters():
        p.requires_grad_(False)
    return edge.eval()


def smooth_images(n, seed):
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=gen)
    return nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)


def test_rmle_reconstructs_inputs_of_a_tiny_edge_in_one_batch():
    edge = tiny_edge()
    x = smooth_images(6, seed=1)
    rec = rmle_reconstruct(edge, edge(x), (3, 16, 16), RMLE, torch.Generator().manual_seed(0), progress=False)
    start = reconstruction_quality(x, torch.full_like(x, 0.5))
    q = reconstruction_quality(x, rec)
    assert rec.shape == x.shape and rec.min() >= 0 and rec.max() <= 1
    assert q["mse"] < 0.1 * start["mse"]
    assert q["ssim"] > 0.95


def test_rmle_result_does_not_depend_on_how_targets_are_batched():
    edge = tiny_edge()
    x = smooth_images(4, seed=2)
    settings = {**RMLE, "iterations": 30}
    together = rmle_reconstruct(edge, edge(x), (3, 16, 16), settings, torch.Generator().manual_seed(0), progress=False)
    first = rmle_reconstruct(edge, edge(x[:2]), (3, 16, 16), settings, torch.Generator().manual_seed(0), progress=False)
    assert torch.allclose(together[:2], first, atol=1e-4)


def test_total_variation_is_zero_for_constant_images_and_per_sample():
    x = torch.zeros(2, 1, 4, 4)
    x[1, :, :, 2:] = 1
    tv = total_variation(x)
    assert tv[0] == 0
    assert tv[1] == pytest.approx(4 / 12)  # 4 jumps among 12 horizontal neighbour pairs


# The authors' objective (white_box_attack.py:103-115, 158-175): SGD(lr, momentum 0.9) from
# unclamped noise on mean((f(x) - z)^2) + 1e3 * sqrt(TV(x)), clamped only at the end.
AUTHORS_RMLE = {
    **RMLE,
    "optimizer": "sgd",
    "lr": 0.05,
    "loss": "batch_mean",
    "tv": "sqrt_squared",
    "tv_weight": 1e3,
    "init": "normal",
    "clamp": "end",
}


def their_tv(x):
    """white_box_attack.py:103-115 as written there."""
    batch_size, h_x, w_x = x.size()[0], x.size()[2], x.size()[3]
    count_h = x[:, :, 1:, :].size()[1] * x[:, :, 1:, :].size()[2] * x[:, :, 1:, :].size()[3]
    count_w = x[:, :, :, 1:].size()[1] * x[:, :, :, 1:].size()[2] * x[:, :, :, 1:].size()[3]
    h_tv = ((x[:, :, 1:, :] - x[:, :, : h_x - 1, :]) ** 2).sum()
    w_tv = ((x[:, :, :, 1:] - x[:, :, :, : w_x - 1]) ** 2).sum()
    return (h_tv / count_h + w_tv / count_w) / batch_size


def test_squared_total_variation_is_the_authors_tv():
    from ciprivacy.attacks.rmle import squared_total_variation

    x = torch.rand(3, 3, 7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert squared_total_variation(x).item() == pytest.approx(their_tv(x).item(), rel=1e-12)


def test_rmle_per_sample_error_sums_each_samples_mean_and_its_gradient_keeps_the_features_layout():
    from ciprivacy.attacks.rmle import rmle_objective

    gen = torch.Generator().manual_seed(0)
    channels_last = torch.channels_last
    leaf = torch.randn(4, 8, 5, 5, generator=gen).contiguous(memory_format=channels_last).requires_grad_(True)
    feat = leaf.to(torch.bfloat16)  # as a channels-last edge under autocast gives them
    z = torch.randn(4, 8, 5, 5, generator=gen).contiguous(memory_format=channels_last)
    x = torch.rand(4, 3, 6, 6, generator=gen)
    arriving = []
    feat.register_hook(lambda g: arriving.append(g))
    loss = rmle_objective(feat, z, x, RMLE)  # tv_weight 0: the feature error alone (in fp32)
    expected = sum(((f.float() - t) ** 2).mean().item() for f, t in zip(feat, z))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert torch.allclose(leaf.grad, 2 * (feat.float() - z).detach() / feat[0].numel(), rtol=1e-2)
    # The gradient reaches the edge in the edge's layout: its backward runs on one layout
    # (on mixed layouts it ran 1.3x slower per step).
    assert arriving[0].is_contiguous(memory_format=channels_last)


def test_one_authors_rmle_step_is_a_hand_computed_sgd_step_of_their_objective():
    """A linear edge (1x1 conv W): the feature term's gradient is (2 / N) W^T (W x - z) with N =
    B C' H W, the TV term's 1e3 dT/dx / (2 sqrt T); SGD's first step with momentum is x - lr g."""
    w = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    edge = nn.Conv2d(3, 4, 1, bias=False).eval()
    edge.weight.data = w[:, :, None, None].clone()
    edge.requires_grad_(False)
    b, h, wd = 2, 6, 5
    z = edge(torch.rand(b, 3, h, wd, generator=torch.Generator().manual_seed(2)))
    settings = {**AUTHORS_RMLE, "iterations": 1, "init": "uniform"}
    x0 = torch.rand(b, 3, h, wd, generator=torch.Generator().manual_seed(3))  # what init draws from this gen
    out = rmle_reconstruct(edge, z, (3, h, wd), settings, torch.Generator().manual_seed(3), progress=False)

    x = x0.double()
    residual = torch.einsum("oc,bchw->bohw", w.double(), x) - z.double()
    g_feat = 2 / residual.numel() * torch.einsum("oc,bohw->bchw", w.double(), residual)
    dh, dw = x[:, :, 1:] - x[:, :, :-1], x[..., 1:] - x[..., :-1]
    count_h, count_w = 3 * (h - 1) * wd, 3 * h * (wd - 1)
    tv = ((dh**2).sum() / count_h + (dw**2).sum() / count_w) / b
    g_h, g_w = torch.zeros_like(x), torch.zeros_like(x)
    g_h[:, :, 1:] += 2 * dh
    g_h[:, :, :-1] -= 2 * dh
    g_w[..., 1:] += 2 * dw
    g_w[..., :-1] -= 2 * dw
    g_tv = 1e3 * (g_h / count_h + g_w / count_w) / b / (2 * tv.sqrt())
    expected = (x - settings["lr"] * (g_feat + g_tv)).clamp(0, 1)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=2e-6)
    # the feature term is in it: without it the step lands elsewhere
    assert (out.double() - (x - settings["lr"] * g_tv).clamp(0, 1)).abs().max() > 1e-5


def test_the_authors_rmle_starts_from_unclamped_noise_and_ours_from_the_projection():
    seen = []

    class Recorder(nn.Module):
        def forward(self, x):
            seen.append((x.min().item(), x.max().item()))
            return tiny_edge()(x)

    z = tiny_edge()(smooth_images(2, seed=0))
    for clamp in ("end", "every_step"):
        seen.clear()
        settings = {**AUTHORS_RMLE, "iterations": 2, "clamp": clamp}
        out = rmle_reconstruct(
            Recorder().eval(), z, (3, 16, 16), settings, torch.Generator().manual_seed(0), progress=False
        )
        assert out.min() >= 0 and out.max() <= 1
        lo, hi = seen[0]
        assert (lo < 0 and hi > 1) if clamp == "end" else (lo >= 0 and hi <= 1)


def test_a_coupled_rmle_objective_runs_on_the_papers_metric_batches():
    from ciprivacy.attacks.scenarios import rmle_batches
    from ciprivacy.metrics.image import paper_batches

    ours = rmle_batches(100, {**RMLE, "batch_size": 64, "seed": 3})
    assert [b.tolist() for b in ours] == [list(range(64)), list(range(64, 100))]
    theirs = rmle_batches(100, {**AUTHORS_RMLE, "batch_size": 64, "seed": 3})
    assert [b.tolist() for b in theirs] == [b.tolist() for b in paper_batches(100, 64, 3)]
    assert sorted(torch.cat(theirs).tolist()) == list(range(100))


def test_rmle_rejects_unknown_optimizer():
    edge = tiny_edge()
    with pytest.raises(ValueError, match="optimizer"):
        rmle_reconstruct(
            edge,
            edge(smooth_images(1, 0)),
            (3, 16, 16),
            {**RMLE, "optimizer": "lbfgs"},
            torch.Generator(),
            progress=False,
        )


@pytest.mark.parametrize("z_shape", [(256, 16, 16), (12, 16, 16), (64, 64, 64), (128, 32, 32), (6, 32, 32)])
def test_inverse_network_maps_any_power_of_two_feature_shape_to_the_image(z_shape):
    for width, extra, pre in [(1.0, 0, 0), (2.0, 1, 0), (1.0, 0, 3)]:
        g = InverseNet(z_shape, (3, 64, 64), base_channels=256, width=width, extra_convs=extra, pre_convs=pre)
        out = g(torch.randn(2, *z_shape))
        assert out.shape == (2, 3, 64, 64)
        assert ((out >= 0) & (out <= 1)).all()


def test_inverse_network_black_box_matches_the_authors_mirror_of_the_cnn_edge():
    g = InverseNet((256, 16, 16), (3, 64, 64))
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(256, 128), (128, 3)]


def test_black_box_inverse_network_adapts_only_its_first_layer_to_a_narrow_z():
    g = InverseNet((12, 16, 16), (3, 64, 64), base_channels=256)
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(12, 128), (128, 3)]
    deeper = InverseNet((12, 16, 16), (3, 64, 64), base_channels=256, pre_convs=2)
    assert sum(p.numel() for p in deeper.parameters()) > sum(p.numel() for p in g.parameters())


def _params(g: nn.Module) -> int:
    return sum(p.numel() for p in g.parameters())


def test_inverse_network_for_the_cnn_edge_is_unchanged_by_the_hidden_layer_rule():
    """The CNN's 256 x 16 x 16 edge (ratio 4) keeps the authors' Inversion_4 layer for layer;
    the counts are those of the networks before every G got a hidden layer (issue: ratio-2 z)."""
    black = InverseNet((256, 16, 16), (3, 64, 64), base_channels=256)

    def layer(m):
        if isinstance(m, nn.ConvTranspose2d):
            return ("ConvT", m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.bias is not None)
        return (type(m).__name__, getattr(m, "num_features", None))

    assert [layer(m) for m in black.net] == [
        ("ConvT", 256, 128, (4, 4), (2, 2), (1, 1), True),
        ("BatchNorm2d", 128),
        ("Tanh", None),
        ("ConvT", 128, 3, (4, 4), (2, 2), (1, 1), True),
        ("Sigmoid", None),
    ]
    assert _params(black) == 530_819
    gray = InverseNet((256, 16, 16), (3, 64, 64), base_channels=256, width=2.0, extra_convs=1)
    assert _params(gray) == 1_652_227
    assert [_torch_layer(m) for m in gray.net] == [
        "ConvTranspose2d",
        "BatchNorm2d",
        "Tanh",
        "Conv2d",
        "BatchNorm2d",
        "Tanh",
        "ConvTranspose2d",
        "Sigmoid",
    ]
    # the CNN SiftFunnel z (12 x 16 x 16) and the ratio-1 ResNet-18 z keep theirs too
    assert _params(InverseNet((12, 16, 16), (3, 64, 64), base_channels=256)) == 31_107
    assert (
        _params(InverseNet((12, 16, 16), (3, 64, 64), base_channels=256, width=2.0, extra_convs=1, pre_convs=3))
        == 7_479_299
    )
    assert _params(InverseNet((64, 64, 64), (3, 64, 64), base_channels=64)) == 19_395
    assert _params(InverseNet((64, 64, 64), (3, 64, 64), base_channels=64, width=2.0, extra_convs=1)) == 75_843


def _torch_layer(m: nn.Module) -> str:
    """The torch.nn layer ``m`` is (ours subclass some, computing the same function)."""
    return next(c.__name__ for c in type(m).__mro__ if c.__module__.startswith("torch.nn"))


def _hidden_channels(g: InverseNet) -> list[int]:
    return [m.num_features for m in g.net if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize(
    "z_shape, base",
    [
        ((128, 32, 32), 128),  # VGG16 split 3, ResNet-18 split 4: ratio 2
        ((6, 32, 32), 64),  # ResNet-18 SiftFunnel: ratio 2
        ((64, 64, 64), 64),  # ResNet-18 split 2: ratio 1
    ],
)
def test_inverse_network_has_a_hidden_layer_scaled_by_width_at_ratio_two_and_one(z_shape, base):
    narrow = InverseNet(z_shape, (3, 64, 64), base_channels=base, width=1.0)
    wide = InverseNet(z_shape, (3, 64, 64), base_channels=base, width=2.0)
    for g in (narrow, wide):
        layers = list(g.net)
        assert isinstance(layers[-1], nn.Sigmoid)
        output = layers[-2]
        assert isinstance(output, nn.ConvTranspose2d if z_shape[1] < 64 else nn.Conv2d) and output.out_channels == 3
        # a conv + BN + Tanh block before the output layer: the decoder is not linear in z
        assert any(isinstance(m, nn.Tanh) for m in layers[:-2])
        assert isinstance(layers[0], nn.Conv2d) and layers[0].in_channels == z_shape[0]
        out = g(torch.randn(2, *z_shape))
        assert out.shape == (2, 3, 64, 64)
    assert _hidden_channels(narrow) == [base // 2]
    assert _hidden_channels(wide) == [base]
    assert _params(wide) > _params(narrow)
    # the gray-box extra 3x3 blocks work at the (width-scaled) hidden channels
    gray = InverseNet(z_shape, (3, 64, 64), base_channels=base, width=2.0, extra_convs=1)
    assert _hidden_channels(gray) == [base, base]


def test_ratio_two_inverse_network_is_not_a_linear_map_of_z():
    g = InverseNet((6, 32, 32), (3, 64, 64), base_channels=64).eval()
    a, b = torch.randn(1, 6, 32, 32), torch.randn(1, 6, 32, 32)

    def logit(z):  # undo the output Sigmoid
        return torch.logit(g(z).double().clamp(1e-6, 1 - 1e-6))

    with torch.no_grad():
        assert not torch.allclose(logit(a + b) - logit(b), logit(a) - logit(torch.zeros_like(a)), atol=1e-3)


def test_a_one_conv_edge_at_half_the_side_is_mirrored_by_one_transposed_conv():
    """The CNN split after its first block: the authors' Inversion_4 is ConvT(128->3) + Sigmoid;
    the attack builds that for an assumed edge of one convolution, a hidden block otherwise."""
    g = InverseNet((128, 32, 32), (3, 64, 64), base_channels=128, hidden_at_z=False)
    assert [_torch_layer(m) for m in g.net] == ["ConvTranspose2d", "Sigmoid"]
    from ciprivacy.models import plain_edge

    convs = lambda **kw: sum(isinstance(m, nn.Conv2d) for m in plain_edge(**kw).modules())  # noqa: E731
    assert convs(arch="cnn", num_classes=10, image_shape=(3, 64, 64), split_block=1) == 1
    assert convs(arch="vgg16", num_classes=10, image_shape=(3, 64, 64), split_block=3) == 3


def test_the_attacker_assumes_the_plain_edge_of_a_known_architecture_and_z_alone_otherwise():
    from ciprivacy.attacks.scenarios import assumed_edge
    from ciprivacy.models import plain_edge

    meta = {
        "arch": "cnn_split1",
        "arch_type": "cnn",
        "num_classes": 10,
        "image_shape": [3, 32, 32],
        "arch_settings": {"width": 8, "split_block": 1},
    }
    plain = plain_edge("cnn", 10, (3, 32, 32), width=8, split_block=1)
    channels = plain(torch.zeros(1, 3, 32, 32)).shape[1]
    # A defense may change z's channels (SiftFunnel's 12); the widths follow the assumed edge.
    assert assumed_edge(meta, (12, 16, 16)) == (channels, False, "cnn")
    # A split model no registry knows (the Python API's): sized from the observed z, with a hidden layer.
    assert assumed_edge({"arch": "custom", "num_classes": 10, "image_shape": [3, 32, 32]}, (12, 8, 8)) == (
        12,
        True,
        None,
    )
    assert assumed_edge({}, (5, 4, 4)) == (5, True, None)


def test_inverse_network_rejects_shapes_that_are_not_a_power_of_two_apart():
    with pytest.raises(ValueError, match="power of two"):
        InverseNet((8, 24, 24), (3, 64, 64))


def test_inverse_network_training_keeps_the_best_test_state():
    edge = tiny_edge()
    aux = (smooth_images(64, seed=3) * 255).to(torch.uint8)
    test = (smooth_images(16, seed=4) * 255).to(torch.uint8)
    g = InverseNet((16, 8, 8), (3, 16, 16))
    settings = {**INVERSE, "epochs": 15, "selection": "best_test", "scheduler_on": "test"}
    g, history = train_inverse_network(g, edge, aux, test, settings, torch.Generator().manual_seed(0))
    test_mse = [h["test_mse"] for h in history]
    assert min(test_mse) < 0.5 * test_mse[0]
    with torch.no_grad():
        g.eval()
        final = nn.functional.mse_loss(g(edge(test.float() / 255)), test.float() / 255).item()
    assert final == pytest.approx(min(test_mse), rel=1e-4)


# --- the attacker's queries: once for a deterministic link, every epoch for a noisy one ---------


class Counting(nn.Module):
    """A link that counts the images it answers; with ``noise`` it adds fresh Gaussian noise."""

    def __init__(self, edge, noise=0.0):
        super().__init__()
        self.edge, self.noise, self.images = edge, noise, 0

    def forward(self, x):
        self.images += x.shape[0]
        z = self.edge(x)
        return z + self.noise * torch.randn_like(z) if self.noise else z


def _train(link, cache_gb):
    aux = (smooth_images(64, seed=3) * 255).to(torch.uint8)
    test = (smooth_images(16, seed=4) * 255).to(torch.uint8)
    torch.manual_seed(0)
    g = InverseNet((16, 8, 8), (3, 16, 16))
    return train_inverse_network(
        g, link, aux, test, {**INVERSE, "query_cache_gb": cache_gb}, torch.Generator().manual_seed(0)
    )


def test_a_deterministic_link_is_queried_once_and_trains_the_same_network():
    cached_link, fresh_link = Counting(tiny_edge()), Counting(tiny_edge())
    g_cached, h_cached = _train(cached_link, cache_gb=1)
    g_fresh, h_fresh = _train(fresh_link, cache_gb=0)
    # each split: the determinism probe (one batch, twice), then every image once
    assert cached_link.images == (2 * 16 + 64) + (2 * 16 + 16)
    assert fresh_link.images == 4 * 64 + 4 * 16  # every epoch: aux, then the test MSE
    assert [h["test_mse"] for h in h_cached] == pytest.approx([h["test_mse"] for h in h_fresh], rel=1e-5)
    for name, tensor in g_fresh.state_dict().items():
        torch.testing.assert_close(g_cached.state_dict()[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("channels_last", [False, True])
def test_cached_answers_are_kept_in_the_layout_the_generator_reads(channels_last):
    aux = (smooth_images(32, seed=3) * 255).to(torch.uint8)
    answers = query_once(tiny_edge(), aux, {**INVERSE, "query_cache_gb": 1, "channels_last": channels_last})
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert answers.is_contiguous(memory_format=layout)
    assert answers[torch.tensor([3, 1])].is_contiguous(memory_format=layout)  # an epoch's batch, as ``take`` cuts it


def test_probing_a_noisy_link_leaves_the_random_state_alone():
    aux = (smooth_images(32, seed=3) * 255).to(torch.uint8)
    link = Counting(tiny_edge(), noise=0.1)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    assert query_once(link, aux, {**INVERSE, "query_cache_gb": 1}) is None
    assert torch.equal(torch.get_rng_state(), before)


def test_a_noisy_link_or_answers_over_the_limit_are_queried_every_epoch():
    noisy = Counting(tiny_edge(), noise=0.1)
    _train(noisy, cache_gb=1)
    assert noisy.images == 2 * (2 * 16) + 4 * 64 + 4 * 16  # both probes found it stochastic
    large = Counting(tiny_edge())
    _train(large, cache_gb=1e-6)  # 64 (16) answers of 16 x 8 x 8 fp32 = 256 (64) KiB > 1 KiB
    assert large.images == 2 * (2 * 16) + 4 * 64 + 4 * 16


# --- model selection of the inverse network: which split picks the kept state -----------------


class Recording(Counting):
    """A link that also records the images it is asked about (as uint8 rows)."""

    def __init__(self, edge, noise=0.0):
        super().__init__(edge, noise)
        self.seen: set[bytes] = set()

    def forward(self, x):
        self.seen |= {bytes(r.mul(255).round().to(torch.uint8).numpy().tobytes()) for r in x}
        return super().forward(x)


def _rows(images):
    return {bytes(r.numpy().tobytes()) for r in images}


def _splits():
    aux = (smooth_images(64, seed=3) * 255).to(torch.uint8)
    return aux[:48], aux[48:], (smooth_images(16, seed=4) * 255).to(torch.uint8), (smooth_images(32, 5) * 255).byte()


def test_rigorous_inverse_training_never_asks_the_link_about_a_test_image():
    fit, val, test, _ = _splits()
    link = Recording(tiny_edge())
    torch.manual_seed(0)
    rigorous = {**INVERSE, "selection": "best_validation", "scheduler_on": "validation", "validation_fraction": 0.25}
    g, history = train_inverse_network(
        InverseNet((16, 8, 8), (3, 16, 16)),
        link,
        fit,
        test,
        rigorous,
        torch.Generator().manual_seed(0),
        validation_images=val,
    )
    assert not link.seen & _rows(test), "a test image reached selection or the scheduler"
    assert link.seen == _rows(fit) | _rows(val)
    assert all("test_mse" not in h for h in history)
    val_mse = [h["validation_mse"] for h in history]
    with torch.no_grad():
        g.eval()
        kept = nn.functional.mse_loss(g(tiny_edge()(val.float() / 255)), val.float() / 255).item()
    assert kept == pytest.approx(min(val_mse), rel=1e-4)
    with pytest.raises(ValueError, match="scored on the validation split, but none was given"):
        train_inverse_network(InverseNet((16, 8, 8), (3, 16, 16)), link, fit, test, rigorous, torch.Generator())


def test_the_authors_selection_scores_the_classifiers_train_split_and_schedules_on_test():
    fit, _, test, train_split = _splits()
    link = Recording(tiny_edge())
    torch.manual_seed(0)
    authors = {**INVERSE, "selection": "best_train_split", "scheduler_on": "test", "amsgrad": True}
    g, history = train_inverse_network(
        InverseNet((16, 8, 8), (3, 16, 16)),
        link,
        fit,
        test,
        authors,
        torch.Generator().manual_seed(0),
        train_split_images=train_split,
    )
    assert link.seen == _rows(fit) | _rows(test) | _rows(train_split)
    scores = [h["train_split_mse"] for h in history]
    assert all("test_mse" in h for h in history)  # the scheduler's signal
    with torch.no_grad():
        g.eval()
        kept = nn.functional.mse_loss(g(tiny_edge()(train_split.float() / 255)), train_split.float() / 255).item()
    assert kept == pytest.approx(min(scores), rel=1e-4)


def test_a_fixed_perturbation_is_one_seeded_draw_reused_every_epoch():
    fit, _, test, _ = _splits()
    fixed = {**INVERSE, "perturbation": "fixed", "query_cache_gb": 0}
    link = Counting(tiny_edge(), noise=0.1)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a = query_once(link, fit, fixed, seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # the draw leaves the random state alone
    assert a.device.type == "cpu" and torch.equal(a, query_once(link, fit, fixed, seed=7))
    assert not torch.equal(a, query_once(link, fit, fixed, seed=8))
    assert not torch.equal(a, tiny_edge()(fit.float() / 255))  # the noise is in it
    link = Counting(tiny_edge(), noise=0.1)
    train_inverse_network(
        InverseNet((16, 8, 8), (3, 16, 16)), link, fit, test, {**fixed, "epochs": 3}, torch.Generator().manual_seed(0)
    )
    # one probe batch (twice) and every image once, per split, whatever the epochs
    assert link.images == (2 * 16 + 48) + (2 * 16 + 16)
    fresh = Counting(tiny_edge(), noise=0.1)
    g = InverseNet((16, 8, 8), (3, 16, 16))
    train_inverse_network(g, fresh, fit, test, {**INVERSE, "epochs": 3}, torch.Generator().manual_seed(0))
    assert fresh.images == 3 * (48 + 16)  # fresh: a new draw every epoch (query_cache_gb unset: no probe)


def test_scheduler_patience_may_be_given_per_architecture():
    from ciprivacy.attacks.inverse import patience_for

    assert patience_for(20, "vgg16") == 20
    assert patience_for({"cnn": 10, "vgg16": 5}, "vgg16") == 5
    with pytest.raises(ValueError, match="no entry for architecture 'resnet18'"):
        patience_for({"cnn": 10}, "resnet18")


# --- the authors' generators (inversion_model_packages.py), chosen per target ---------------------


@pytest.mark.parametrize(
    "make, z_shape, expected",
    [
        (lambda: A.Inversion4((256, 16, 16), (3, 64, 64)), (256, 16, 16), 530_819),  # CNN block 2 (ndf 128)
        (lambda: A.InversionResNet(3, 3), (64, 64, 64), 149_699),  # ResNet-18 stem + layer1
        (lambda: A.Pv4Inversion4(12, 128, 3), (12, 16, 16), 80_555),  # CNN SiftFunnel, ndf 128
        (lambda: A.AEInversion4(128, 3), (128, 16, 16), 2_006_659),  # CNN AE
        (lambda: A.InversionResNetAE(32, 3), (32, 64, 64), 279_107),  # ResNet-18 AE
        (lambda: A.InversionVGG(3), (256, 16, 16), 1_396_099),  # vgg16_bn after conv 5
        (lambda: A.InversionVGGPv4(4, 3), (4, 16, 16), 385_043),  # VGG SiftFunnel
    ],
)
def test_the_authors_generators_have_their_parameter_counts(make, z_shape, expected):
    g = make()
    assert _params(g) == expected
    out = g.eval()(torch.randn(2, *z_shape))
    assert out.shape == (2, 3, 64, 64) and ((out >= 0) & (out <= 1)).all()


def test_the_authors_cnn_generator_is_our_black_box_mirror_layer_for_layer():
    ours = InverseNet((256, 16, 16), (3, 64, 64), base_channels=256)
    theirs = A.Inversion4((256, 16, 16), (3, 64, 64))
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]


CNN, PLAIN_CNN = {"split_block": 2, "width": 128}, (256, 16, 16)


@pytest.mark.parametrize(
    "arch, settings, defense, deepened, gray, z, plain, name",
    [
        ("cnn", CNN, "unprotected", False, False, PLAIN_CNN, PLAIN_CNN, "Inversion_4"),
        ("cnn", CNN, "noise", False, True, PLAIN_CNN, PLAIN_CNN, "Inversion_4"),  # gray = black without new layers
        ("cnn", CNN, "siftfunnel", True, True, (12, 16, 16), PLAIN_CNN, "pv4_Inversion_4"),
        ("cnn", CNN, "siftfunnel", True, False, (12, 16, 16), PLAIN_CNN, None),  # no black-box one in their code
        ("cnn", CNN, "siftfunnel", True, False, PLAIN_CNN, PLAIN_CNN, "Inversion_4"),  # the compensation output
        ("cnn", CNN, "ae", True, True, (128, 16, 16), PLAIN_CNN, "AE_Inversion_4"),
        ("cnn", CNN, "ae", True, False, (128, 16, 16), PLAIN_CNN, None),
        ("resnet18", {"split_block": 2}, "unprotected", False, False, (64, 64, 64), (64, 64, 64), "InversionResNet"),
        ("resnet18", {"split_block": 2}, "ae", True, True, (32, 64, 64), (64, 64, 64), "InversionResNet_AE"),
        ("resnet18", {"split_block": 2}, "siftfunnel", True, True, (6, 32, 32), (64, 64, 64), None),  # theirs: 2x64x64
        ("vgg16", {"split_block": 3}, "unprotected", False, False, (128, 32, 32), (128, 32, 32), None),
        ("vgg16", {"split_block": 5}, "unprotected", False, False, (256, 16, 16), (256, 16, 16), "inversion_vgg"),
        ("vgg16", {"split_block": 5}, "siftfunnel", True, True, (4, 16, 16), (256, 16, 16), "inversion_vgg_pv4"),
        ("vgg16", {"split_block": 3}, "siftfunnel", True, True, (4, 32, 32), (128, 32, 32), None),
    ],
)
def test_the_authors_generator_is_picked_per_target_or_none(arch, settings, defense, deepened, gray, z, plain, name):
    g, why = A.authors_generator(arch, settings, defense, deepened, gray, z, plain, (3, 64, 64))
    if name is None:
        assert g is None and "no" in why
        return
    assert why == name
    assert g.eval()(torch.randn(1, *z)).shape == (1, 3, 64, 64)


def test_the_authors_resnet_generator_follows_the_split_depth():
    for split, z in [(1, (64, 64, 64)), (4, (128, 32, 32)), (6, (256, 16, 16)), (8, (512, 8, 8))]:
        g, name = A.authors_generator(
            "resnet18", {"split_block": split}, "unprotected", False, False, z, z, (3, 64, 64)
        )
        assert name == "InversionResNet" and g.eval()(torch.randn(1, *z)).shape == (1, 3, 64, 64)
