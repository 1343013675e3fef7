"""Measurements of a trained target that need no attacker: accuracy, delta(z), |theta_edge|, MI,
the CEM bounds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ciprivacy.data import load_prepared
from ciprivacy.data.batches import iterate_batches
from ciprivacy.io import save_json
from ciprivacy.metrics.cem import cem_metrics
from ciprivacy.metrics.features import effective_information, feature_shape
from ciprivacy.metrics.mine import CRITICS, estimate_mi
from ciprivacy.models import count_params
from ciprivacy.models.base import Normalize, normalization_for
from ciprivacy.precision import module_layout, to_layout
from ciprivacy.runtime import configure_job, pick_device, seed_everything
from ciprivacy.target import Target, accuracy, load_target

log = logging.getLogger(__name__)


def target_measures(target: Target, x_test: torch.Tensor, y_test: torch.Tensor, settings: dict[str, Any]) -> dict:
    """Test accuracy of the deployed pipeline and the feature measures (delta(z), z's shape,
    |theta_edge|, the accountant's epsilon, the CEM measures) on uint8 test images on the
    device. ``settings``: the ``evaluation`` block (``channels_last`` optional)."""
    channels_last = bool(settings.get("channels_last", False))
    return {
        **target.ident,
        "test_acc": accuracy(target, x_test, y_test, settings["batch_size"], bool(settings["amp"]), channels_last),
        "delta_z": effective_information(target.observe, x_test, settings["batch_size"]),
        "z_shape": feature_shape(target.observe, x_test),
        "edge_params": count_params(target.model.edge),
        "epsilon": target.meta.get("defense_report", {}).get("epsilon"),
        **cem_metrics(target, x_test, y_test, settings),
    }


def evaluate_target(model_path: str, data_path: str, output: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Test accuracy of the deployed pipeline and the feature measures on the test split."""
    configure_job()
    device = pick_device(settings.get("device", "auto"))
    seed_everything(int(settings["seed"]))
    target = load_target(model_path, device, bool(settings.get("channels_last", False)))
    data = load_prepared(data_path)
    x_test, y_test = (t.to(device) for t in data.split("test"))
    result = target_measures(target, x_test, y_test, settings)
    result["device"] = str(device)  # a run-time setting, not in params: recorded where it ran
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


def mutual_information(
    target: Target, x_train: torch.Tensor, x_eval: torch.Tensor, settings: dict[str, Any], gen: torch.Generator
) -> dict[str, Any]:
    """MINE between inputs and observed features: the critic trained on ``x_train`` (the first
    ``max_train`` images), evaluated on ``x_eval`` (uint8 images on the device). ``settings``:
    the ``mine`` block (``channels_last`` optional)."""
    channels_last = bool(settings.get("channels_last", False))
    device = x_eval.device
    if settings["max_train"] is not None:
        x_train = x_train[: settings["max_train"]]
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
    log.info("MI estimate %.5f (best %.5f, last %.5f)", estimate["mi"], estimate["mi_best"], estimate["mi_last"])
    return {**target.ident, **estimate, "critic": settings["critic"]}


def measure_mi(model_path: str, data_path: str, output: str, settings: dict[str, Any]) -> dict[str, Any]:
    """MINE between inputs and observed features: trained on the classifier's training split,
    evaluated on the auxiliary split (the authors' protocol)."""
    configure_job()
    device = pick_device(settings.get("device", "auto"))
    gen = seed_everything(int(settings["seed"]))
    target = load_target(model_path, device, bool(settings.get("channels_last", False)))
    data = load_prepared(data_path)
    x_train = data.split("train")[0]
    if settings["max_train"] is not None:
        x_train = x_train[: settings["max_train"]]
    result = mutual_information(target, x_train.to(device), data.split("aux")[0].to(device), settings, gen)
    result["device"] = str(device)
    save_json(result, output)
    return result
