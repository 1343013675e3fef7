import math

import dcor
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from ciprivacy.config import defense_block
from ciprivacy.data.batches import to_float
from ciprivacy.defenses import DEFENSES, create_defense
from ciprivacy.defenses.club import CLUB
from ciprivacy.defenses.dependence import (
    channel_pearson_penalty,
    distance_correlation,
    gaussian_kernel,
    hsic,
    label_kernel,
    normalized_hsic,
)
from ciprivacy.models import count_params
from ciprivacy.models.base import DEFAULT_MEAN as MEAN
from ciprivacy.models.base import DEFAULT_STD as STD

with open("config.yaml") as fh:
    CONFIG = yaml.safe_load(fh)
# Registry defenses (entries without `base`); the others are variants of them (the ablation).
BASE_DEFENSES = sorted(n for n, block in CONFIG["defenses"].items() if "base" not in block)
SMALL = {"split_block": 2, "width": 32, "dropout": 0.5}


def build(name, image_shape=(3, 32, 32), arch_settings=SMALL, num_classes=4, **overrides):
    kind, settings = defense_block(CONFIG, name)
    defense = create_defense(kind, **{**settings, **overrides})
    return defense, defense.build("cnn", num_classes, image_shape, arch_settings)


def test_every_paper_defense_is_registered_configured_and_run():
    paper = {
        "unprotected",
        "noise",
        "dropping",
        "dpsgd",
        "nls",
        "mid",
        "bido",
        "vib",
        "infoscissors",
        "ae",
        "siftfunnel",
    }
    assert set(DEFENSES.names()) == paper | {"nopeek"}
    assert set(BASE_DEFENSES) == paper | {"nopeek"}
    assert set(CONFIG["experiments"]["cifar_cnn"]["defenses"]) == paper
    assert "nopeek" in CONFIG["experiments"]["cem"]["defenses"]


@pytest.mark.parametrize("name", sorted(CONFIG["defenses"]))
def test_each_defense_trains_a_step_and_predicts(name):
    torch.manual_seed(0)
    defense, model = build(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model, opt = defense.setup(model, opt, train_size=64, train={"epochs": 2, "batch_size": 16})
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(64, 3, 32, 32) * 255).to(torch.uint8)
    labels = torch.randint(0, 4, (64,))
    x, y = next(iter(defense.batches(images, labels, 16, gen)))
    model.train()
    loss = defense.loss(model, x, y, epoch=1)
    assert loss.ndim == 0 and torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    plain = defense.unwrap(model).eval()
    with torch.no_grad():
        z = defense.observe(plain.edge(to_float(images[:4])))
        logits = defense.forward(plain, to_float(images[:4]))
    assert logits.shape == (4, 4) and torch.isfinite(logits).all()
    assert z.ndim == 4
    assert isinstance(defense.report(), dict)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("unprotected", 299_520),
        ("noise", 299_520),
        ("dropping", 299_520),
        ("dpsgd", 299_520),
        ("nls", 299_520),
        ("mid", 299_520),
        ("bido", 299_520),
        ("infoscissors", 299_520),
        ("vib", 299_520 + 2 * 256),
        ("ae", 2_365_056),
    ],
)
def test_edge_parameter_counts_on_the_papers_cnn(name, expected):
    _, model = build(name, image_shape=(3, 64, 64), arch_settings={}, num_classes=10)
    assert count_params(model.edge) == expected


def test_siftfunnel_edge_is_within_ten_percent_of_the_paper_and_sends_12x16x16():
    _, model = build("siftfunnel", image_shape=(3, 64, 64), arch_settings={}, num_classes=10)
    assert abs(count_params(model.edge) - 14_911) / 14_911 < 0.10
    z = model.eval().edge(torch.rand(2, 3, 64, 64))
    assert z.shape == (2, 12, 16, 16) and (z >= 0).all()
    assert model.cloud(z).shape == (2, 10)


def test_dpsgd_model_has_no_batchnorm_and_reports_epsilon():
    defense, model = build("dpsgd")
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, opt = defense.setup(model, opt, train_size=64, train={"epochs": 1, "batch_size": 16})
    images = (torch.rand(64, 3, 32, 32) * 255).to(torch.uint8)
    for x, y in defense.batches(images, torch.randint(0, 4, (64,)), 16, torch.Generator().manual_seed(0)):
        opt.zero_grad()
        defense.loss(model, x, y, 0).backward()
        opt.step()
    eps = defense.report()["epsilon"]
    assert 0 < eps < math.inf


def test_noise_and_dropping_perturb_z_as_configured():
    z = torch.ones(200, 16, 8, 8)
    noise = create_defense("noise", sigma=0.8)
    assert (noise.observe(z) - z).std().item() == pytest.approx(0.8, rel=0.05)
    dropped = create_defense("dropping", rate=0.8).observe(z)
    assert (dropped == 0).float().mean().item() == pytest.approx(0.8, abs=0.02)
    assert set(dropped.unique().tolist()) == {0.0, 1.0}  # no rescaling


def test_nls_ramps_the_negative_smoothing_in():
    defense = create_defense("nls", alpha=-0.05, ramp_start=0.0, ramp_end=0.5)
    defense.setup(None, None, 10, {"epochs": 10})
    assert defense.smoothing(0) == 0.0
    assert defense.smoothing(2) == pytest.approx(-0.02)
    assert defense.smoothing(5) == pytest.approx(-0.05) == defense.smoothing(9)


def test_siftfunnel_terms_can_each_be_switched_off():
    defense, model = build("siftfunnel")
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 4, (8,))
    assert set(defense.loss_terms(model, x, y)) == {"kl", "dcor", "pearson", "l1"}
    off, model = build("siftfunnel", terms={"kl": False, "dcor": False, "pearson": True, "l1": False})
    assert set(off.loss_terms(model, x, y)) == {"ce", "pearson"}


def test_smoothed_labels_follow_the_papers_formula():
    defense, _ = build("siftfunnel")
    ls = defense.smoothed_labels(torch.tensor([1]))
    assert ls[0, 1].item() == pytest.approx(1 - 0.35 + 0.35 / 4)
    assert ls[0, 0].item() == pytest.approx(0.35 / 4)
    assert ls.sum().item() == pytest.approx(1.0)


def test_the_authors_smoothed_labels_put_one_minus_alpha_on_the_class():
    defense, _ = build("siftfunnel", label_smoothing="authors")
    ls = defense.smoothed_labels(torch.tensor([1]))
    assert ls[0].tolist() == pytest.approx([0.35 / 3, 1 - 0.35, 0.35 / 3, 0.35 / 3])  # project_infodr_v4.py:119-124


def _eval_terms(**overrides):
    """SiftFunnel's loss terms on a fixed batch with the edge in eval mode, and its z."""
    torch.manual_seed(0)
    defense, model = build("siftfunnel", **overrides)
    model.eval()
    x, y = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3, 0, 1])
    with torch.no_grad():
        return defense.loss_terms(model, x, y), model.edge(x), F.softmax(model(x), 1), y


@pytest.mark.parametrize("form", ["paper", "authors"])
def test_the_kl_term_is_batchmean_kl_to_each_smoothing(form):
    terms, _, p, y = _eval_terms(label_smoothing=form)
    a, k = 0.35, 4
    on, off = (1 - a + a / k, a / k) if form == "paper" else (1 - a, a / (k - 1))
    ls = torch.full((6, k), off)
    ls[torch.arange(6), y] = on
    by_hand = (ls * (ls.log() - p.log())).sum() / 6
    assert terms["kl"].item() == pytest.approx(3.5 * by_hand.item(), rel=1e-5)


def test_the_l1_term_is_eq15s_norm_or_the_authors_mean():
    norm, z, _, _ = _eval_terms(l1="norm", tau=5e-3)
    mean, _, _, _ = _eval_terms(l1="mean", tau=3e-2)
    per_sample = [sum(abs(v) for v in sample.flatten().tolist()) for sample in z]
    assert norm["l1"].item() == pytest.approx(5e-3 * sum(per_sample) / len(per_sample), rel=1e-5)
    assert mean["l1"].item() == pytest.approx(3e-2 * sum(per_sample) / z.numel(), rel=1e-5)


def test_the_authors_pearson_term_divides_by_unbiased_stds():
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    z[:, 1] += 0.5 * z[:, 0]
    hw = 16
    by_hand = 0.0
    for sample in z:
        v = sample.flatten(1)
        v = v - v.mean(1, keepdim=True)
        sd = (v.pow(2).sum(1) / (hw - 1)).sqrt()  # torch.std: unbiased
        for i in range(3):
            for j in range(3):
                by_hand += ((v[i] * v[j]).sum() / hw / (sd[i] * sd[j] + 1e-12)).item() ** 2
    by_hand /= 2 * 3 * 3
    assert channel_pearson_penalty(z, std="unbiased").item() == pytest.approx(by_hand, rel=1e-6)  # fp32 inside
    # the biased form is the correlation; the authors' is (HW - 1) / HW of it, squared
    assert channel_pearson_penalty(z, std="unbiased").item() == pytest.approx(
        channel_pearson_penalty(z).item() * (15 / 16) ** 2, rel=1e-5
    )
    terms, z_model, _, _ = _eval_terms(pearson_std="unbiased")
    assert terms["pearson"].item() == pytest.approx(0.6 * channel_pearson_penalty(z_model, std="unbiased").item())


def test_distance_correlation_agrees_with_the_dcor_package():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, 4, 4, generator=gen, dtype=torch.float64)
    z = x.flatten(1)[:, :10] ** 2 + 0.5 * torch.randn(40, 10, generator=gen, dtype=torch.float64)
    ours = distance_correlation(x, z).item()
    ref = dcor.distance_correlation(x.flatten(1).numpy(), z.numpy())
    assert ours == pytest.approx(ref, abs=1e-6)
    assert distance_correlation(x, x).item() == pytest.approx(1.0, abs=1e-6)
    # The paper's eq. 12 form, (1/n^2 sum AB) / sqrt(dVar dVar), is Szekely's dCor squared.
    assert distance_correlation(x, z, squared=True).item() == pytest.approx(ref**2, abs=1e-6)
    assert abs(ref - ref**2) > 0.1  # the two forms are far apart on this data
    assert distance_correlation(x, x, squared=True).item() == pytest.approx(1.0, abs=1e-6)


def test_siftfunnel_dcor_term_is_eq12_the_squared_dcor_and_nopeek_keeps_dcor():
    torch.manual_seed(0)
    defense, model = build("siftfunnel", terms={"kl": False, "dcor": True, "pearson": False, "l1": False})
    model.eval()
    x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 4, (16,))
    with torch.no_grad():
        term = defense.loss_terms(model, x, y)["dcor"].item()
        z = model.edge(x)
    ref = dcor.distance_correlation(x.flatten(1).double().numpy(), z.flatten(1).double().numpy())
    assert term == pytest.approx(CONFIG["defenses"]["siftfunnel"]["lambda2"] * ref**2, rel=1e-4)
    assert term != pytest.approx(CONFIG["defenses"]["siftfunnel"]["lambda2"] * ref, rel=1e-2)


def test_pearson_term_lies_in_unit_interval_with_known_extremes():
    gen = torch.Generator().manual_seed(0)
    same = torch.randn(4, 1, 8, 8, generator=gen).expand(4, 5, 8, 8)
    assert channel_pearson_penalty(same).item() == pytest.approx(1.0, abs=1e-4)
    independent = torch.randn(4, 5, 64, 64, generator=gen)
    value = channel_pearson_penalty(independent).item()
    assert 1 / 5 <= value < 1 / 5 + 0.01  # eq. 13 keeps the diagonal: 1/C for uncorrelated channels
    anti = torch.cat([same[:, :1], -same[:, :1]], dim=1)
    assert channel_pearson_penalty(anti).item() == pytest.approx(1.0, abs=1e-4)


def test_pearson_term_is_eq13_the_mean_over_all_c_squared_pairs():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(3, 4, 6, 6, generator=gen, dtype=torch.float64)
    z[:, 1] += 0.7 * z[:, 0]
    direct = torch.stack([torch.corrcoef(sample.flatten(1)).pow(2).mean() for sample in z]).mean()
    assert channel_pearson_penalty(z).item() == pytest.approx(direct.item(), abs=1e-5)


def test_normalized_hsic_is_bidos_estimator():
    """BiDO's hsic_normalized_cca: Kc = K H, R = Kc (Kc + 1e-5 m I)^-1, sum(R_K * R_L^T)."""
    gen = torch.Generator().manual_seed(0)
    m = 7
    x = torch.randn(m, 5, generator=gen, dtype=torch.float64)
    k = gaussian_kernel(x, 1.0).double()
    lk = gaussian_kernel(torch.sin(2 * x) + 0.1 * torch.randn(m, 5, generator=gen, dtype=torch.float64), 1.0).double()
    h = torch.eye(m, dtype=torch.float64) - torch.ones(m, m, dtype=torch.float64) / m
    reg = 1e-5 * m * torch.eye(m, dtype=torch.float64)

    def r(kernel):
        return kernel @ h @ torch.linalg.inv(kernel @ h + reg)

    direct = (r(k) * r(lk).T).sum().item()
    assert normalized_hsic(k, lk).item() == pytest.approx(direct, rel=1e-5)
    assert normalized_hsic(lk, k).item() == pytest.approx(direct, rel=1e-5)  # tr(R_K R_L) is symmetric


def test_hsic_separates_dependent_from_independent_data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 5, generator=gen)
    dependent = torch.tanh(x) + 0.1 * torch.randn(128, 5, generator=gen)
    independent = torch.randn(128, 5, generator=gen)
    kx = gaussian_kernel(x, 5.0)  # BiDO's width; with the 1e-5 m ridge, narrow kernels look full rank
    dep = normalized_hsic(kx, gaussian_kernel(dependent, 5.0)).item()
    ind = normalized_hsic(kx, gaussian_kernel(independent, 5.0)).item()
    assert 0 <= ind and dep > 3 * ind
    # On one-hot labels of K classes R is near the projection onto K - 1 centred directions.
    y = torch.randint(0, 3, (128,), generator=gen)
    assert normalized_hsic(label_kernel(y, 3), label_kernel(y, 3)).item() == pytest.approx(2.0, abs=1e-2)
    assert hsic(kx, kx).item() > 0


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_club_bounds_the_mutual_information_of_correlated_gaussians(rho):
    dim = 2
    true_mi = -0.5 * dim * math.log(1 - rho**2)  # 0 and 0.288 nats
    # With q = p(x|z), CLUB = E_joint log p(x|z) - E_marginal log p(x|z) = dim rho^2 / (1 - rho^2).
    club_closed_form = dim * rho**2 / (1 - rho**2)  # 0 and 0.667 nats
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(2000, dim, generator=gen)
    x = rho * z + math.sqrt(1 - rho**2) * torch.randn(2000, dim, generator=gen)
    club = CLUB(
        nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, dim)),
        nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, dim)),
    )
    opt = torch.optim.Adam(club.parameters(), lr=5e-3)
    for _ in range(300):
        idx = torch.randint(0, 2000, (256,), generator=gen)
        loss = -club.log_likelihood(x[idx], z[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        bound = club.upper_bound(x[:500], z[:500]).item() * dim  # per-dimension -> total nats
    assert bound == pytest.approx(club_closed_form, abs=0.25)
    assert bound >= true_mi - 0.05


def test_gray_box_knows_how_many_layers_each_deepened_edge_adds():
    assert create_defense("ae", **CONFIG["defenses"]["ae"]).extra_edge_layers == 4
    assert create_defense("siftfunnel", **CONFIG["defenses"]["siftfunnel"]).extra_edge_layers == 3
    assert create_defense("unprotected").extra_edge_layers == 0


def test_bido_needs_weights_for_the_architecture():
    with pytest.raises(ValueError, match="no \\(a1, a2\\) for architecture 'cnn'"):
        create_defense("bido", weights={"resnet18": [5, 10]}, kernel_sigma=5.0).build("cnn", 4, (3, 32, 32), SMALL)


ARCHS_SMALL = {"cnn": SMALL, "resnet18": {}, "vgg16": {}}


@pytest.mark.parametrize("arch", sorted(ARCHS_SMALL))
@pytest.mark.parametrize("name", BASE_DEFENSES)
def test_every_defense_works_on_every_architecture(arch, name):
    torch.manual_seed(0)
    defense = create_defense(name, **defense_block(CONFIG, name)[1])
    model = defense.build(arch, 3, (3, 32, 32), ARCHS_SMALL[arch])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model, opt = defense.setup(model, opt, train_size=8, train={"epochs": 1, "batch_size": 4})
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    loss = defense.loss(model, x, y, epoch=0)
    assert torch.isfinite(loss)
    loss.backward()
    plain = defense.unwrap(model).eval()
    with torch.no_grad():
        assert defense.forward(plain, x).shape == (4, 3)


@pytest.mark.parametrize(
    "arch,name,expected,z_shape",
    [
        ("resnet18", "unprotected", 149_824, (64, 64, 64)),
        ("resnet18", "ae", 279_136, (32, 64, 64)),
        ("vgg16", "unprotected", 112_576, (128, 32, 32)),
        ("vgg16", "siftfunnel", 41_512, (4, 32, 32)),  # z keeps the plain split's 32x32 (Table 5 delta(z) 3,587)
        ("cnn", "siftfunnel", 14_437, (12, 16, 16)),
    ],
)
def test_edge_counts_and_z_shapes_on_other_architectures(arch, name, expected, z_shape):
    model = create_defense(name, **CONFIG["defenses"][name]).build(arch, 10, (3, 64, 64), {})
    assert count_params(model.edge) == expected
    assert tuple(model.eval().edge(torch.rand(1, 3, 64, 64)).shape[1:]) == z_shape


def test_siftfunnel_z_is_never_larger_than_the_plain_splits_features():
    # vgg16 split_block 5 (the data-type study) sends 256 x 16 x 16: z keeps 16 x 16 there.
    model = create_defense("siftfunnel", **CONFIG["defenses"]["siftfunnel"]).build(
        "vgg16", 4, (1, 64, 64), {"split_block": 5}
    )
    z = model.eval().edge(torch.rand(2, 1, 64, 64))
    assert tuple(z.shape[1:]) == (4, 16, 16) and model(torch.rand(2, 1, 64, 64)).shape == (2, 4)


def test_resnet_siftfunnel_edge_matches_the_papers_count_within_one_percent():
    model = create_defense("siftfunnel", **CONFIG["defenses"]["siftfunnel"]).build("resnet18", 10, (3, 64, 64), {})
    assert abs(count_params(model.edge) - 78_864) / 78_864 < 0.01
    assert tuple(model.eval().edge(torch.rand(1, 3, 64, 64)).shape[1:]) == (6, 32, 32)


def _mid(arch, layout, **settings):
    with torch.device("meta"):  # the authors' CNN layout has 268 M parameters: shapes only
        return create_defense("mid", beta=1e-2, layout=layout, **settings).build(arch, 10, (3, 64, 64), {})


def _head(model):
    """(kind, in, out) of the cloud's fully connected layers, in order."""
    from ciprivacy.defenses.layers import VariationalLinear

    out = []
    for m in model.cloud.modules():
        if isinstance(m, VariationalLinear):
            out.append(("bottleneck", m.fc.in_features, m.out_features))
        elif isinstance(m, nn.Linear) and not any(m is v.fc for v in model.cloud.modules() if hasattr(v, "fc")):
            out.append(("linear", m.in_features, m.out_features))
    return out


@pytest.mark.parametrize(
    "arch, layout, head, added",
    [
        # MID's code (Classifier_VIB for this CNN): Linear(flat -> 5K), Dropout, st 5K -> 2 x 25, classifier 25 -> K
        ("cnn", "penultimate", [("linear", 16384, 50), ("bottleneck", 50, 25), ("linear", 25, 10)], 2_550 + 260 - 510),
        ("cnn", "first_linear", [("bottleneck", 16384, 50), ("linear", 50, 10)], 1_638_500 - 819_250),
        # the authors' Classifier_4_mid: st 16384 -> 2 x 8192 (268,451,840), then Linear(8192 -> 5K), Dropout, -> K
        ("cnn", "before_head", [("bottleneck", 16384, 8192), ("linear", 8192, 50), ("linear", 50, 10)],
         268_451_840 + 409_650 - 819_250),
        # ResNet-18's only layer is the classifier: fc 512 -> K (5,130)
        ("resnet18", "penultimate", [("bottleneck", 512, 256), ("linear", 256, 10)], 262_656 + 2_570 - 5_130),
        ("resnet18", "first_linear", [("bottleneck", 512, 256), ("linear", 256, 10)], 262_656 + 2_570 - 5_130),
        # rn18_mid: st k -> 2k with k = flat, then Linear(k -> 5K), Dropout, Linear(5K -> K)
        ("resnet18", "before_head", [("bottleneck", 512, 512), ("linear", 512, 50), ("linear", 50, 10)],
         525_312 + 25_650 + 510 - 5_130),
    ],
)  # fmt: skip
def test_mid_layouts_put_the_bottleneck_where_each_code_does(arch, layout, head, added):
    plain = create_defense("unprotected").build(arch, 10, (3, 64, 64), {})
    model = _mid(arch, layout)
    assert _head(model) == head
    assert count_params(model.edge) == count_params(plain.edge)  # the edge is untouched
    assert count_params(model.cloud) - count_params(plain.cloud) == added


def test_mid_samples_at_inference_only_when_told():
    x = torch.rand(2, 3, 32, 32)
    for sample in (True, False):
        torch.manual_seed(0)
        model = create_defense("mid", beta=1e-2, sample_at_inference=sample).build("cnn", 4, (3, 32, 32), SMALL).eval()
        with torch.no_grad():
            assert torch.equal(model(x), model(x)) is not sample


def test_the_authors_ae_layout_is_two_parallel_branches_with_their_counts():
    from ciprivacy.defenses.deepened import ParallelResidualEdge

    torch.manual_seed(0)
    parallel = create_defense("ae", l1_weight=1e-2, layout="parallel").build("cnn", 10, (3, 64, 64), {})
    assert count_params(parallel.edge) == 2_365_056  # the paper's count: 299,520 + 2,065,536
    assert isinstance(parallel.cloud[0], ParallelResidualEdge) and count_params(parallel.cloud[0]) == 738_432
    torch.manual_seed(0)
    sequential = create_defense("ae", l1_weight=1e-2, layout="sequential").build("cnn", 10, (3, 64, 64), {})
    assert count_params(sequential.edge) == 2_365_056 and count_params(sequential.cloud[0]) == 295_424
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = parallel.eval().edge(x), sequential.eval().edge(x)
    assert a.shape == b.shape == (2, 128, 16, 16) and (a >= 0).all()
    # the same weights in both places compute another function: a sum of branches, not a chain
    block = parallel.edge[1]
    with torch.no_grad():
        h = torch.randn(1, 256, 4, 4)
        by_hand = F.relu(block.out(block.conv2ed(h) + block.encoder[2](F.silu(block.encoder[0](h)))))
        torch.testing.assert_close(block(h), by_hand)
        chained = F.relu(block.out(block.encoder[2](F.silu(block.encoder[0](block.conv2ed(h))))))
        assert not torch.allclose(block(h), chained)


def test_bido_feeds_its_x_kernel_unit_or_normalised_pixels(monkeypatch):
    import ciprivacy.defenses.information as info

    seen = []
    real = info.gaussian_kernel
    monkeypatch.setattr(info, "gaussian_kernel", lambda a, sigma: seen.append(a.detach().clone()) or real(a, sigma))
    x, y = torch.rand(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 0, 1])
    for view in ("unit", "normalized"):
        torch.manual_seed(0)
        defense, model = build("bido", x_view=view)
        seen.clear()
        defense.loss(model, x, y, 0)
        kernel_x = seen[1]  # z's kernel first, then x's
        expected = (
            x if view == "unit" else (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        )
        torch.testing.assert_close(kernel_x, expected)


def test_vib_kl_is_summed_or_averaged_over_z_and_weighted_by_beta():
    from ciprivacy.defenses.dependence import gaussian_kl
    from ciprivacy.defenses.layers import ChannelVariance

    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    losses = {}
    for reduction in ("sum", "mean"):
        torch.manual_seed(0)
        defense, model = build("vib", beta=0.5, kl_reduction=reduction)
        torch.manual_seed(1)
        losses[reduction] = defense.loss(model, x, y, 0).item()
        torch.manual_seed(1)
        logits = model(x)
        (bottleneck,) = [m for m in model.modules() if isinstance(m, ChannelVariance)]
        mu = model.edge[0](x)
        sigma = F.softplus(bottleneck.scale * mu + bottleneck.shift - 5) + 1e-8
        kl = gaussian_kl(mu, sigma)  # summed over z's elements, averaged over the batch
        dim = mu[0].numel()
        expected = F.cross_entropy(logits, y) + 0.5 * (kl / dim if reduction == "mean" else kl)
        assert losses[reduction] == pytest.approx(expected.item(), rel=1e-5)
    assert losses["sum"] > 100 * losses["mean"]
