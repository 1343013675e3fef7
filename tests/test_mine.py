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


def test_report_must_be_best_last_or_validation():
    with pytest.raises(ValueError, match="report"):
        estimate_mi(CRITICS.get("mlp")((1,), (1,)), lambda: [], lambda: [], 1, 1e-3, report="max")
    with pytest.raises(ValueError, match="needs validation pairs"):
        estimate_mi(CRITICS.get("mlp")((1,), (1,)), lambda: [], lambda: [], 1, 1e-3, report="validation")


def _best_and_validation(rho, seeds, n_train, n_eval, epochs):
    """MINE on correlated Gaussians (dim 2) per seed: (true MI, [(best, validation), ...]),
    validation and evaluation pairs drawn apart."""
    dim = 2
    true_mi = -0.5 * dim * math.log(1 - rho**2)
    out = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(100 + seed)
        train = gaussian_pairs(n_train, dim, rho, 1000 + seed)
        val = gaussian_pairs(n_eval, dim, rho, 2000 + seed)
        ev = gaussian_pairs(n_eval, dim, rho, 3000 + seed)
        result = estimate_mi(
            CRITICS.get("mlp")((dim,), (dim,), hidden=64),
            batches(*train, 128, gen, True),
            batches(*ev, n_eval),
            epochs=epochs,
            lr=3e-3,
            report="validation",
            gen=gen,
            validation_pairs=batches(*val, n_eval),
        )
        chosen = result["validation_curve"].index(max(result["validation_curve"]))
        assert result["mi"] == result["mi_validation"] == result["curve"][chosen]
        assert result["mi_best"] == max(result["curve"])
        out.append((result["mi_best"], result["mi_validation"]))
    return true_mi, out


def test_the_best_epoch_reads_higher_than_the_one_a_held_out_part_picks():
    """report best takes the largest of noisy held-out estimates; the validation report picks
    its epoch on other pairs than the value it reports (measured: best 0.304 vs 0.242 on
    average, 4 seeds, rho 0.5, true 0.288)."""
    _, runs = _best_and_validation(rho=0.5, seeds=4, n_train=1000, n_eval=256, epochs=15)
    diffs = [best - val for best, val in runs]
    assert all(d >= 0 for d in diffs) and sum(diffs) / len(diffs) > 0.02


@pytest.mark.slow
def test_once_the_critic_converges_the_validation_report_is_closer_to_the_truth():
    """rho 0.5 (0.288 nats), 40 epochs on 4,000 pairs, 512 held-out pairs, 6 seeds. Measured:
    best 0.373 on average (error 0.086), validation 0.287 (error 0.038). With an unconverged
    critic (20 epochs on 2,000 pairs) the DV bound sits below the truth and the max's upward
    bias partly cancels it: best 0.318 (error 0.045) vs validation 0.229 (error 0.076)."""
    true_mi, runs = _best_and_validation(rho=0.5, seeds=6, n_train=4000, n_eval=512, epochs=40)
    best = [b for b, _ in runs]
    val = [v for _, v in runs]
    assert sum(best) / 6 > sum(val) / 6 + 0.03  # best is biased upward
    error_best = sum(abs(b - true_mi) for b in best) / 6
    error_val = sum(abs(v - true_mi) for v in val) / 6
    assert error_val < error_best


def test_the_per_batch_estimate_is_the_mean_of_each_batchs_dv_bound():
    from ciprivacy.metrics.mine import evaluate_dv, shuffled

    torch.manual_seed(0)
    critic = CRITICS.get("mlp")((2,), (2,), hidden=8)
    x, z = gaussian_pairs(30, 2, 0.5, 0)
    pairs = batches(x, z, 8)  # 8, 8, 8, 6
    per_batch = evaluate_dv(critic, pairs, torch.Generator().manual_seed(1), per_batch=True)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        by_hand = [dv_bound(critic(a, b), critic(a, shuffled(b, gen))).item() for a, b in pairs()]
    assert per_batch == pytest.approx(sum(by_hand) / 4, rel=1e-6)
    assert evaluate_dv(critic, pairs, torch.Generator().manual_seed(1)) != pytest.approx(per_batch, rel=1e-3)


def test_restarts_are_summarised_by_their_mean_std_and_a_t_interval():
    from ciprivacy.metrics.mine import restart_summary

    s = restart_summary([0.10, 0.14, 0.12])
    assert s["mi"] == pytest.approx(0.12) and s["mi_std"] == pytest.approx(0.02)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, 2)
    assert s["mi_ci95"] == pytest.approx([0.12 - half, 0.12 + half])
    assert restart_summary([0.3]) == {"mi": 0.3, "mi_std": None, "mi_ci95": None}


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
