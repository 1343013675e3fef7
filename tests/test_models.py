from pathlib import Path

import pytest
import torch

from ciprivacy.models import ARCHS, count_params, create_model


def test_cnn_edge_has_exactly_the_papers_parameter_count():
    model = create_model("cnn", num_classes=10, image_shape=(3, 64, 64))
    assert count_params(model.edge) == 299_520


def test_normalisation_is_a_buffer_not_a_parameter():
    model = create_model("cnn", num_classes=10, image_shape=(3, 64, 64))
    names = [n for n, _ in model.edge.named_parameters()]
    assert not any("mean" in n or "std" in n for n in names)
    assert any(n.endswith("mean") for n, _ in model.edge.named_buffers())


def test_split_model_composes_edge_and_cloud():
    torch.manual_seed(0)
    model = create_model("cnn", num_classes=10, image_shape=(3, 64, 64)).eval()
    x = torch.rand(2, 3, 64, 64)
    z = model.edge(x)
    assert z.shape == (2, 256, 16, 16)
    assert torch.allclose(model.cloud(z), model(x))
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("split_block,shape", [(1, (128, 32, 32)), (3, (512, 8, 8)), (4, (1024, 4, 4))])
def test_other_split_points_move_blocks_between_edge_and_cloud(split_block, shape):
    model = create_model("cnn", num_classes=4, image_shape=(3, 64, 64), split_block=split_block).eval()
    full = create_model("cnn", num_classes=4, image_shape=(3, 64, 64))
    assert model.edge(torch.rand(1, 3, 64, 64)).shape[1:] == shape
    assert count_params(model) == count_params(full)


def test_cnn_rejects_sizes_it_cannot_pool():
    with pytest.raises(ValueError, match="divisible by 16"):
        create_model("cnn", num_classes=10, image_shape=(3, 40, 40))


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(KeyError, match="cnn"):
        create_model("resnet999", num_classes=10, image_shape=(3, 64, 64))
    assert "cnn" in ARCHS.names()


@pytest.mark.parametrize("meta_from", [0, "default"], ids=["on-meta", "by-size"])  # by size: on the CPU here
@pytest.mark.parametrize(
    "defense, arch", [("unprotected", "cnn"), ("siftfunnel", "resnet18"), ("vib", "cnn"), ("noise+cem", "cnn")]
)
def test_a_saved_target_is_rebuilt_without_drawing_initial_weights(defense, arch, meta_from):
    import yaml

    from ciprivacy.config import defense_block
    from ciprivacy.target import build_target, rebuild_target

    config = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    kind, settings = defense_block(config, defense)
    meta = {"defense": kind, "arch": arch, "num_classes": 4, "image_shape": [3, 32, 32], "defense_settings": settings}
    torch.manual_seed(0)
    trained, _ = build_target(meta, 4, (3, 32, 32))
    state = {k: v.clone() for k, v in trained.state_dict().items()}
    before = torch.get_rng_state()
    rebuilt, _ = rebuild_target(meta, state) if meta_from == "default" else rebuild_target(meta, state, meta_from)
    assert torch.equal(torch.get_rng_state(), before)  # what a job draws next does not depend on the model
    assert not any(t.is_meta for t in [*rebuilt.parameters(), *rebuilt.buffers()])
    x = torch.rand(2, 3, 32, 32)
    trained.eval(), rebuilt.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        expected = trained(x)
        torch.manual_seed(1)
        assert torch.equal(rebuilt(x), expected)
