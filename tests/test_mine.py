import math

import pytest
import torch
import torch.nn.functional as F

from ciprivacy.metrics.mine import CRITICS, dv_bound, estimate_mi


def gaussian_pairs(n, dim, rho, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen)
    z = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, dim, generator=gen)
    return x, z


def batches(x, z, size, gen=None, shuffle=False):
    def it():
        order = torch.randperm(len(x), generator=gen) if shuffle else torch.arange(len(x))
        for s in range(0, len(x), size):
            idx = order[s : s + size]
            yield x[idx], z[idx]

    return it


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_mine_recovers_mutual_information_of_correlated_gaussians(rho):
    dim = 2
    true_mi = -0.5 * dim * math.log(1 - rho**2)  # 0 and 1.022 nats
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    xtr, ztr = gaussian_pairs(4000, dim, rho, seed=2)
    xev, zev = gaussian_pairs(4000, dim, rho, seed=3)
    critic = CRITICS.get("mlp")((dim,), (dim,), hidden=64)
    result = estimate_mi(
        critic, batches(xtr, ztr, 256, gen, True), batches(xev, zev, 4000), epochs=40, lr=3e-3, report="last", gen=gen
    )
    assert result["mi"] == pytest.approx(true_mi, abs=0.15)


def test_dv_bound_of_a_constant_critic_is_zero():
    t = torch.full((10,), 0.3)
    assert dv_bound(t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_paper_critic_is_bounded_and_accepts_smaller_features():
    critic = CRITICS.get("paper_conv")((3, 32, 32), (16, 8, 8))
    t = critic(torch.rand(4, 3, 32, 32), torch.randn(4, 16, 8, 8) * 100)
    assert t.shape == (4,)
    assert ((t > 0) & (t < 1)).all()
    with pytest.raises(ValueError, match="no larger than x"):
        CRITICS.get("paper_conv")((3, 8, 8), (16, 16, 16))


def test_report_must_be_best_or_last():
    with pytest.raises(ValueError, match="report"):
        estimate_mi(CRITICS.get("mlp")((1,), (1,)), lambda: [], lambda: [], 1, 1e-3, report="max")


@pytest.mark.parametrize(
    "x_shape, z_shape",
    [
        ((3, 32, 32), (16, 8, 8)),  # centred, padded on every side
        ((1, 16, 16), (4, 15, 13)),  # odd padding: one pixel short on one side
        ((3, 16, 16), (8, 16, 16)),  # same size: no padding
        ((3, 16, 16), (8, 16, 8)),  # padded across only
        ((3, 8, 8), (2, 1, 1)),  # a single feature pixel
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("placement", ["top_left", "centre"])
def test_paper_critic_on_z_footprint_is_the_stacked_critic(x_shape, z_shape, channels_last, placement):
    """The critic convolves z only where the padded z can reach; values and gradients are those
    of the one conv over the zero-padded stack."""
    torch.manual_seed(0)
    critic = CRITICS.get("paper_conv")(x_shape, z_shape, placement=placement)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    critic = critic.to(memory_format=fmt)
    x = torch.rand(5, *x_shape).contiguous(memory_format=fmt)
    z = torch.randn(5, *z_shape).contiguous(memory_format=fmt)
    ours, stacked = critic(x, z), critic.forward_stacked(x, z)
    torch.testing.assert_close(ours, stacked, rtol=0, atol=1e-6)
    params = list(critic.parameters())
    for a, b in zip(torch.autograd.grad(ours.sum(), params), torch.autograd.grad(stacked.sum(), params)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_paper_critic_puts_z_top_left_as_the_authors_convmine():
    """The authors pad z on the right and bottom only: F.pad(z, (0, W - w, 0, H - h))."""
    torch.manual_seed(0)
    critic = CRITICS.get("paper_conv")((3, 16, 16), (8, 4, 4))
    x, z = torch.rand(3, 3, 16, 16), torch.randn(3, 8, 4, 4)
    authors = critic.net(torch.cat([x, F.pad(z, (0, 12, 0, 12))], 1)).flatten(1).mean(1)
    torch.testing.assert_close(critic(x, z), authors, rtol=0, atol=1e-6)
    centred = CRITICS.get("paper_conv")((3, 16, 16), (8, 4, 4), placement="centre")
    centred.load_state_dict(critic.state_dict())
    assert (centred(x, z) - authors).abs().max() > 1e-5  # same weights, z elsewhere: another value
    with pytest.raises(ValueError, match="placement must be one of"):
        CRITICS.get("paper_conv")((3, 16, 16), (8, 4, 4), placement="middle")


def test_mine_pairs_give_the_critic_its_view_of_x_and_the_edge_raw_pixels():
    from ciprivacy.measure import feature_pairs
    from ciprivacy.models.base import Normalize

    seen = []
    observe = lambda x: seen.append(x) or x[:, :1, ::2, ::2]  # noqa: E731
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    norm = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    ((x, z),) = list(feature_pairs(observe, images, 4, False, torch.Generator(), critic_view=norm)())
    torch.testing.assert_close(x, (images.float() / 255 - 0.5) / 0.25)
    assert seen[0].min() >= 0 and seen[0].max() <= 1  # the edge still gets [0, 1] pixels
    assert z.shape == (4, 1, 4, 4)


def test_paper_critic_refuses_inputs_of_other_sizes_than_it_was_built_for():
    critic = CRITICS.get("paper_conv")((3, 32, 32), (16, 8, 8))
    with pytest.raises(ValueError, match=r"got x \(32, 32\) and z \(10, 10\)"):
        critic(torch.rand(2, 3, 32, 32), torch.randn(2, 16, 10, 10))
    with pytest.raises(ValueError, match=r"got x \(40, 40\)"):
        critic(torch.rand(2, 3, 40, 40), torch.randn(2, 16, 8, 8))
