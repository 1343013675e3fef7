"""Measurements of a trained target that need no attacker: accuracy, delta(z), |theta_edge|, MI,
the CEM bounds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import torch

from ciprivacy.compilation import compile_module, wanted
from ciprivacy.data import load_prepared
from ciprivacy.data.batches import iterate_batches
from ciprivacy.data.prepared import holdout_split
from ciprivacy.io import save_csv, save_json
from ciprivacy.metrics.cem import cem_metrics
from ciprivacy.metrics.features import feature_shape, nonzero_per_sample
from ciprivacy.metrics.mine import CRITICS, estimate_mi, restart_summary
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


def per_image_measures(
    target: Target, x_test: torch.Tensor, y_test: torch.Tensor, settings: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """Per test image: whether it is classified right (``correct``) and delta(z)'s count of
    non-zero features for it (``nonzero``), from which the reports bootstrap their intervals."""
    channels_last = bool(settings.get("channels_last", False))
    return {
        "correct": correct_per_image(
            target, x_test, y_test, settings["batch_size"], bool(settings["amp"]), channels_last
        ),
        "nonzero": nonzero_per_sample(target.observe, x_test, settings["batch_size"]),
    }


def target_measures(
    target: Target,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    settings: dict[str, Any],
    per_image: dict[str, torch.Tensor] | None = None,
) -> dict:
    """Test accuracy of the deployed pipeline and the feature measures (delta(z), z's shape,
    |theta_edge|, the accountant's epsilon, the CEM measures) on uint8 test images on the
    device, with the chance levels of the test labels. ``settings``: the ``evaluation`` block
    (``channels_last`` optional); ``per_image``: ``per_image_measures``'s, when already computed."""
    per_image = per_image if per_image is not None else per_image_measures(target, x_test, y_test, settings)
    n = max(1, y_test.numel())
    num_classes = int(target.meta.get("num_classes", int(y_test.max().item()) + 1 if y_test.numel() else 1))
    return {
        **target.ident,
        "test_acc": per_image["correct"].sum().item() / n,
        "delta_z": per_image["nonzero"].sum().item() / n,
        **chance_levels(y_test, num_classes),
        "z_shape": feature_shape(target.observe, x_test),
        "edge_params": count_params(target.model.edge),
        "epsilon": target.meta.get("defense_report", {}).get("epsilon"),
        **cem_metrics(target, x_test, y_test, settings),
    }


def evaluate_target(
    model_path: str, data_path: str, output: str, settings: dict[str, Any], per_image_path: str | None = None
) -> dict[str, Any]:
    """Test accuracy of the deployed pipeline and the feature measures on the test split
    (``target_measures``). ``per_image_path`` (a CSV) gets, per test image, its index, label,
    whether it was classified right and delta(z)'s count for it."""
    configure_job()
    device = pick_device(settings.get("device", "auto"))
    seed_everything(int(settings["seed"]))
    target = load_target(model_path, device, bool(settings.get("channels_last", False)))
    data = load_prepared(data_path)
    x_test, y_test = (t.to(device) for t in data.split("test"))
    per_image = per_image_measures(target, x_test, y_test, settings)
    result = target_measures(target, x_test, y_test, settings, per_image)
    result["device"] = str(device)  # a run-time setting, not in params: recorded where it ran
    if per_image_path is not None:
        table = {
            "test_index": data.splits["test"].numpy(),
            "label": y_test.cpu().numpy(),
            "correct": per_image["correct"].to(torch.int8).numpy(),
            "nonzero": per_image["nonzero"].numpy(),
        }
        save_csv(pd.DataFrame(table), per_image_path)
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
    target: Target,
    x_train: torch.Tensor,
    x_eval: torch.Tensor,
    settings: dict[str, Any],
    y_train: torch.Tensor | None = None,
) -> dict[str, Any]:
    """MINE between inputs and observed features (uint8 images on the device): the critic trained
    on ``x_train`` less ``validation_fraction`` of it (seeded; stratified by ``y_train`` when
    given), which chooses the reported epoch under ``report: validation``, and evaluated on
    ``x_eval``. ``settings``: the ``mine`` block with ``seed`` (``channels_last`` optional).

    The critic is trained ``restarts`` times from independent initialisations (seeds derived
    from the job's; the first is the job's own); ``mi`` is the mean of the restarts' values,
    with their standard deviation and a 95 % t-interval (``restarts`` holds each run)."""
    seed = int(settings["seed"])
    channels_last = bool(settings.get("channels_last", False))
    device = x_eval.device
    labels = y_train if y_train is not None else torch.zeros(x_train.shape[0], dtype=torch.long)
    fit, held = holdout_split(labels.cpu(), settings["validation_fraction"], seed)
    x_fit = x_train[fit.to(x_train.device)]
    if settings["max_train"] is not None:
        x_fit = x_fit[: settings["max_train"]]
    x_held = x_train[held.to(x_train.device)]
    z_shape = tuple(feature_shape(target.observe, x_eval))
    options = {"placement": settings["z_placement"]} if settings["critic"] == "paper_conv" else {}
    # The authors' critic sees x normalised as the classifier's input (its edge normalises itself).
    view = Normalize(*normalization_for(x_eval.shape[1])).to(device) if settings["normalize_x"] else None
    arch = target.meta.get("arch_type", target.meta.get("arch"))
    betas = settings["betas"].get(arch, (0.9, 0.999)) if isinstance(settings["betas"], dict) else settings["betas"]
    batch = settings["batch_size"]
    runs = []
    for restart in range(settings["restarts"]):
        run_seed = seed + 1_000_003 * restart
        gen = seed_everything(run_seed)
        critic = CRITICS.get(settings["critic"])(tuple(x_eval.shape[1:]), z_shape, **options)
        critic = compile_module(module_layout(critic.to(device), channels_last), wanted(settings))
        estimate = estimate_mi(
            critic,
            feature_pairs(target.observe, x_fit, batch, True, gen, channels_last, view),
            feature_pairs(target.observe, x_eval, batch, False, gen, channels_last, view),
            settings["epochs"],
            settings["lr"],
            settings["report"],
            gen,
            desc=f"MINE {restart + 1}/{settings['restarts']}",
            eval_every=settings["eval_every"],
            validation_pairs=feature_pairs(target.observe, x_held, batch, False, gen, channels_last, view)
            if held.numel()
            else None,
            optimizer=settings["optimizer"],
            betas=tuple(betas),
            weight_decay=settings["weight_decay"],
            estimate=settings["estimate"],
            scheduler_patience=settings["scheduler_patience"] if settings["scheduler"] == "plateau" else None,
            scheduler_factor=settings["scheduler_factor"],
        )
        runs.append({"seed": run_seed, **estimate})
        log.info("MINE restart %d: %.5f", restart + 1, estimate["mi"])
    summary = restart_summary([r["mi"] for r in runs])
    means = {k: sum(r[k] for r in runs) / len(runs) for k in ("mi_best", "mi_last")}
    log.info("MI estimate %.5f over %d restarts (best %.5f, last %.5f)", summary["mi"], len(runs), *means.values())
    return {
        **target.ident,
        **summary,
        **means,
        "report": settings["report"],
        "restarts": runs,
        "critic": settings["critic"],
    }


def measure_mi(model_path: str, data_path: str, output: str, settings: dict[str, Any]) -> dict[str, Any]:
    """MINE between inputs and observed features: trained on the classifier's training split,
    evaluated on the auxiliary split (the authors' protocol); see ``mutual_information``."""
    configure_job()
    device = pick_device(settings.get("device", "auto"))
    seed_everything(int(settings["seed"]))
    target = load_target(model_path, device, bool(settings.get("channels_last", False)))
    data = load_prepared(data_path)
    x_train, y_train = data.split("train")
    result = mutual_information(target, x_train.to(device), data.split("aux")[0].to(device), settings, y_train)
    result["device"] = str(device)  # a run-time setting, not in params: recorded where it ran
    save_json(result, output)
    return result
