"""Measurements of a trained target that need no attacker: accuracy, delta(z), |theta_edge|, MI,
the CEM bounds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import torch

from ciprivacy.data import load_prepared
from ciprivacy.data.batches import iterate_batches
from ciprivacy.io import save_csv, save_json
from ciprivacy.metrics.cem import cem_metrics
from ciprivacy.metrics.features import feature_shape, nonzero_per_sample
from ciprivacy.metrics.mine import CRITICS, estimate_mi
from ciprivacy.models import count_params
from ciprivacy.models.base import Normalize, normalization_for
from ciprivacy.precision import autocast, module_layout, to_layout
from ciprivacy.runtime import configure_job, pick_device, seed_everything
from ciprivacy.target import Target, load_target

log = logging.getLogger(__name__)


@torch.no_grad()
def correct_per_image(
    target: Target, images: torch.Tensor, labels: torch.Tensor, batch_size: int, amp: bool, channels_last: bool = False
) -> torch.Tensor:
    """Whether the deployed pipeline classifies each image right (bool, one per image, on the
    CPU): ``ciprivacy.target.accuracy`` image by image, the same forward passes in the same order."""
    target.model.eval()
    out = []
    for x, y in iterate_batches(images, labels, batch_size):
        x = to_layout(x, channels_last)
        with autocast(images.device, amp):
            logits = target.defense.forward(target.model, x)
        out.append((logits.argmax(1) == y).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def chance_levels(labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """The accuracy a model that learned nothing reaches on these labels: 1 / K (a uniform guess)
    and the majority class's share (always answering it)."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes)
    return {"chance_uniform": 1.0 / num_classes, "chance_majority": counts.max().item() / max(1, labels.numel())}


def evaluate_target(
    model_path: str, data_path: str, output: str, settings: dict[str, Any], per_image_path: str | None = None
) -> dict[str, Any]:
    """Test accuracy of the deployed pipeline and the feature measures on the test split, with
    the chance levels of the test labels. ``per_image_path`` (a CSV) gets, per test image, its
    index, label, whether it was classified right and delta(z)'s count for it, from which the
    reports bootstrap accuracy's and delta(z)'s intervals."""
    configure_job()
    device = pick_device(settings.get("device", "auto"))
    seed_everything(int(settings["seed"]))
    channels_last = bool(settings.get("channels_last", False))
    target = load_target(model_path, device, channels_last)
    data = load_prepared(data_path)
    x_test, y_test = (t.to(device) for t in data.split("test"))
    correct = correct_per_image(target, x_test, y_test, settings["batch_size"], bool(settings["amp"]), channels_last)
    nonzero = nonzero_per_sample(target.observe, x_test, settings["batch_size"])
    n = max(1, y_test.numel())
    result = {
        **target.ident,
        "test_acc": correct.sum().item() / n,
        "delta_z": nonzero.sum().item() / n,
        **chance_levels(y_test, data.num_classes),
        "z_shape": feature_shape(target.observe, x_test),
        "edge_params": count_params(target.model.edge),
        "epsilon": target.meta.get("defense_report", {}).get("epsilon"),
        **cem_metrics(target, x_test, y_test, settings),
        "device": str(device),  # a run-time setting, not in params: recorded where it ran
    }
    if per_image_path is not None:
        per_image = {
            "test_index": data.splits["test"].numpy(),
            "label": y_test.cpu().numpy(),
            "correct": correct.to(torch.int8).numpy(),
            "nonzero": nonzero.numpy(),
        }
        save_csv(pd.DataFrame(per_image), per_image_path)
    save_json(result, output)
    log.info("evaluation: %s", result)
    return result


def feature_pairs(
    observe: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    gen: torch.Generator,
    channels_last: bool = False,
    critic_view: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """MINE's (x, z) pairs, cut from uint8 images on their device each time it is called. The
    edge observes x in [0, 1]; the critic gets ``critic_view(x)`` when given (e.g. normalised)."""

    def batches():
        for x, _ in iterate_batches(images, None, batch_size, shuffle=shuffle, gen=gen):
            x = to_layout(x, channels_last)
            z = to_layout(observe(x), channels_last)
            yield (x if critic_view is None else critic_view(x)), z

    return batches


def measure_mi(model_path: str, data_path: str, output: str, settings: dict[str, Any]) -> dict[str, Any]:
    """MINE between inputs and observed features: trained on the classifier's training split,
    evaluated on the auxiliary split (the authors' protocol)."""
    configure_job()
    device = pick_device(settings.get("device", "auto"))
    gen = seed_everything(int(settings["seed"]))
    channels_last = bool(settings.get("channels_last", False))
    target = load_target(model_path, device, channels_last)
    data = load_prepared(data_path)
    x_train = data.split("train")[0]
    if settings["max_train"] is not None:
        x_train = x_train[: settings["max_train"]]
    x_train = x_train.to(device)
    x_eval = data.split("aux")[0].to(device)
    z_shape = tuple(feature_shape(target.observe, x_eval))
    options = {"placement": settings["z_placement"]} if settings["critic"] == "paper_conv" else {}
    critic = CRITICS.get(settings["critic"])(tuple(x_eval.shape[1:]), z_shape, **options)
    critic = module_layout(critic.to(device), channels_last)
    # The authors' critic sees x normalised as the classifier's input (its edge normalises itself).
    view = Normalize(*normalization_for(x_eval.shape[1])).to(device) if settings["normalize_x"] else None
    batch = settings["batch_size"]
    estimate = estimate_mi(
        critic,
        feature_pairs(target.observe, x_train, batch, True, gen, channels_last, view),
        feature_pairs(target.observe, x_eval, batch, False, gen, channels_last, view),
        settings["epochs"],
        settings["lr"],
        settings["report"],
        gen,
        eval_every=settings["eval_every"],
    )
    result = {**target.ident, **estimate, "critic": settings["critic"], "device": str(device)}
    save_json(result, output)
    log.info("MI estimate %.5f (best %.5f, last %.5f)", estimate["mi"], estimate["mi_best"], estimate["mi_last"])
    return result
