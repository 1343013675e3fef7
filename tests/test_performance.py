"""The fast paths keep results and avoid host syncs: channels-last, loops without .item(),
MINE's evaluation interval, GPU slots shared round by round, freed memory kept in the process."""

import ctypes
import os
import subprocess
import sys

import pytest
import torch

from ciprivacy import runtime
from ciprivacy.attacks.inverse import InverseNet, inverse_epoch
from ciprivacy.defenses import create_defense
from ciprivacy.measure import feature_pairs
from ciprivacy.metrics.mine import CRITICS, estimate_mi, evaluate_dv
from ciprivacy.metrics.mine import train_epoch as mine_epoch
from ciprivacy.models.layers import BiasApartConvTranspose2d
from ciprivacy.precision import amp_active, autocast, module_layout
from ciprivacy.target import train_epoch

TRAIN = {"batch_size": 8, "hflip": True, "color_jitter": 0.2, "amp": False}


def images(n=32, side=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, side, side), generator=gen, dtype=torch.uint8), torch.arange(n) % 4


def model_and_opt(channels_last):
    torch.manual_seed(0)
    defense = create_defense("unprotected")
    model = module_layout(defense.build("cnn", 4, (3, 16, 16), {"width": 8}), channels_last)
    return defense, model, torch.optim.Adam(model.parameters(), lr=1e-3)


def count_items(monkeypatch):
    """Record .item(), bool() and float() on tensors called from ciprivacy code (host reads;
    a sync on a GPU). PyTorch's own CPU-side reads, such as Adam's step counter, are not ours."""
    calls = []
    for name in ("item", "__bool__", "__float__"):
        real = getattr(torch.Tensor, name)

        def read(self, _real=real, _name=name):
            caller = sys._getframe(1).f_code.co_filename
            if "ciprivacy" in caller:
                calls.append(f"{_name} in {caller}")
            return _real(self)

        monkeypatch.setattr(torch.Tensor, name, read)
    return calls


def test_channels_last_training_matches_the_default_layout():
    x, y = images()
    losses, weights = [], []
    for cl in (False, True):
        defense, model, opt = model_and_opt(cl)
        losses.append(train_epoch(model, defense, opt, x, y, TRAIN, torch.Generator().manual_seed(1), 0, cl))
        weights.append(model.edge[1][0].weight.detach().contiguous())
    assert torch.allclose(losses[0], losses[1], atol=1e-4)
    assert torch.allclose(weights[0], weights[1], atol=1e-4)


def test_transposed_conv_with_its_bias_added_apart_is_the_same_layer():
    torch.manual_seed(0)
    plain = torch.nn.ConvTranspose2d(8, 4, 4, 2, 1)
    apart = BiasApartConvTranspose2d(8, 4, 4, 2, 1)
    apart.load_state_dict(plain.state_dict())
    assert list(apart.state_dict()) == list(plain.state_dict())
    x = torch.randn(3, 8, 5, 5)
    weights = torch.randn(3, 4, 10, 10)
    results = []
    for layer in (plain, apart):
        xi = x.clone().requires_grad_()
        out = layer(xi)
        (out * weights).sum().backward()
        results.append((out.detach(), xi.grad, layer.weight.grad, layer.bias.grad))
        assert layer(x, output_size=[11, 11]).shape == (3, 4, 11, 11)
        with torch.autocast("cpu", torch.bfloat16):
            assert layer(x).dtype == torch.bfloat16
    for ours, theirs in zip(results[1], results[0]):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", torch.bfloat16):
        torch.testing.assert_close(apart(x).float(), plain(x).float(), atol=0.05, rtol=0.02)


def test_training_and_attack_loops_never_read_back_to_the_host(monkeypatch):
    x, y = images()
    defense, model, opt = model_and_opt(True)
    edge = torch.no_grad()(model.edge.eval())
    z_shape = tuple(edge(x[:1].float()).shape[1:])
    generator = InverseNet(z_shape, (3, 16, 16))
    critic = CRITICS.get("paper_conv")((3, 16, 16), z_shape)
    critic_opt = torch.optim.Adam(critic.parameters())
    gen = torch.Generator().manual_seed(0)
    calls = count_items(monkeypatch)
    train_epoch(model, defense, opt, x, y, TRAIN, gen, 0, True)
    inverse_epoch(generator, edge, x, torch.optim.Adam(generator.parameters()), {"batch_size": 8, "amp": True}, gen)
    mine_epoch(critic, feature_pairs(edge, x, 8, True, gen), critic_opt, gen)
    assert calls == []
    evaluate_dv(critic, feature_pairs(edge, x, 8, False, gen), gen)
    assert len(calls) == 1, "the DV evaluation reads one number back, not one per batch"


def test_mine_evaluates_every_n_epochs_and_after_the_last():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, generator=gen)
    pairs = lambda: [(x, x + 0.1 * torch.randn(64, 1, generator=gen))]  # noqa: E731
    result = estimate_mi(CRITICS.get("mlp")((1,), (1,)), pairs, pairs, epochs=5, lr=1e-3, gen=gen, eval_every=2)
    assert result["curve_epochs"] == [2, 4, 5] and len(result["curve"]) == 3
    with pytest.raises(ValueError, match="eval_every"):
        estimate_mi(CRITICS.get("mlp")((1,), (1,)), pairs, pairs, epochs=1, lr=1e-3, eval_every=0)


def test_amp_off_means_fp32():
    cpu = torch.device("cpu")
    assert not amp_active(cpu, False)
    with autocast(cpu, False):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_gpu_slots_fill_every_device_once_before_any_twice(tmp_path):
    before = len(runtime._LOCKS)
    try:
        claimed = [runtime.claim_gpu_slot(2, str(tmp_path), rounds=2) for _ in range(5)]
    finally:
        for fh in runtime._LOCKS[before:]:
            fh.close()
        del runtime._LOCKS[before:]
    assert claimed == [0, 1, 0, 1, None]


# Counts the blocks glibc maps with mmap for one 64 MiB tensor, before and after
# retain_freed_memory, and whether the heap keeps the tensor's memory once it is freed; prints
# "<mapped before> <applied> <mapped after> <kept after>".
MAPPED_BLOCKS = """
import ctypes
import torch
from ciprivacy.runtime import retain_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
def mapped_and_kept():
    before = libc.mallinfo2()
    t = torch.empty(64 << 20, dtype=torch.uint8)
    alive = libc.mallinfo2()
    del t
    # kept: the heap grew to hold the tensor and did not shrink when it was freed. (Comparing
    # with before + 64 MiB fails when free heap space already held part of it.)
    return alive.hblks - before.hblks, alive.arena > before.arena and libc.mallinfo2().arena >= alive.arena
before, _ = mapped_and_kept()
applied = retain_freed_memory()
print(before, applied, *mapped_and_kept())
"""


@pytest.mark.parametrize("setting, expected", [("retain", "1 True 0 True"), ("system", "1 False 1 False")])
def test_retained_memory_serves_large_tensors_from_the_heap_and_keeps_them(setting, expected):
    if runtime._glibc_version() is None or not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("mallopt and mallinfo2 (glibc 2.33+) are glibc's")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD"))}
    env["CIPRIVACY_MALLOC"] = setting
    out = subprocess.run([sys.executable, "-c", MAPPED_BLOCKS], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected.split()
