"""Measurements of a trained target that need no attacker: accuracy, delta(z), |theta_edge|, MI,
the CEM bounds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ciprivacy.data import load_prepared
from ciprivacy.data.batches import iterate_batches
from ciprivacy.data.prepared import holdout_split
from ciprivacy.io import save_json
from ciprivacy.metrics.cem import cem_metrics
from ciprivacy.metrics.features import effective_information, feature_shape
from ciprivacy.metrics.mine import CRITICS, estimate_mi, restart_summary
from ciprivacy.models import count_params
from ciprivacy.models.base import Normalize, normalization_for
from ciprivacy.precision import module_layout, to_layout
from ciprivacy.runtime import configure_job, pick_device, seed_everything
from ciprivacy.target import accuracy, load_target

log = logging.getLogger(__name__)


def evaluate_target(model_path: str, data_path: str, output: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Test accuracy of the deployed pipeline and the feature measures on the test split."""
    configure_job()
    device = pick_device(settings.get("device", "auto"))
    seed_everything(int(settings["seed"]))
    channels_last = bool(settings.get("channels_last", False))
    target = load_target(model_path, device, channels_last)
    data = load_prepared(data_path)
    x_test, y_test = (t.to(device) for t in data.split("test"))
    result = {
        **target.ident,
        "test_acc": accuracy(target, x_test, y_test, settings["batch_size"], bool(settings["amp"]), channels_last),
        "delta_z": effective_information(target.observe, x_test, settings["batch_size"]),
        "z_shape": feature_shape(target.observe, x_test),
        "edge_params": count_params(target.model.edge),
        "epsilon": target.meta.get("defense_report", {}).get("epsilon"),
        **cem_metrics(target, x_test, y_test, settings),
        "device": str(device),  # a run-time setting, not in params: recorded where it ran
    }
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
    evaluated on the auxiliary split (the authors' protocol). ``validation_fraction`` of the
    training split (seeded, class-stratified) is held out of the critic's training to choose
    the reported epoch (``report: validation``).

    The critic is trained ``restarts`` times from independent initialisations (seeds derived
    from the job's; the first is the job's own); ``mi`` is the mean of the restarts' values,
    with their standard deviation and a 95 % t-interval (``restarts`` holds each run)."""
    configure_job()
    device = pick_device(settings.get("device", "auto"))
    seed = int(settings["seed"])
    seed_everything(seed)
    channels_last = bool(settings.get("channels_last", False))
    target = load_target(model_path, device, channels_last)
    data = load_prepared(data_path)
    x_train, y_train = data.split("train")
    fit, held = holdout_split(y_train, settings["validation_fraction"], seed)
    x_fit = x_train[fit]
    if settings["max_train"] is not None:
        x_fit = x_fit[: settings["max_train"]]
    x_fit, x_held = x_fit.to(device), x_train[held].to(device)
    x_eval = data.split("aux")[0].to(device)
    z_shape = tuple(feature_shape(target.observe, x_eval))
    options = {"placement": settings["z_placement"]} if settings["critic"] == "paper_conv" else {}
    # The authors' critic sees x normalised as the classifier's input (its edge normalises itself).
    view = Normalize(*normalization_for(x_eval.shape[1])).to(device) if settings["normalize_x"] else None
    arch = target.meta.get("arch_type", target.meta["arch"])
    betas = settings["betas"][arch] if isinstance(settings["betas"], dict) else settings["betas"]
    batch = settings["batch_size"]
    runs = []
    for restart in range(settings["restarts"]):
        run_seed = seed + 1_000_003 * restart
        gen = seed_everything(run_seed)
        critic = CRITICS.get(settings["critic"])(tuple(x_eval.shape[1:]), z_shape, **options)
        critic = module_layout(critic.to(device), channels_last)
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
    result = {
        **target.ident,
        **summary,
        **means,
        "report": settings["report"],
        "restarts": runs,
        "critic": settings["critic"],
        "device": str(device),
    }
    save_json(result, output)
    log.info("MI estimate %.5f over %d restarts (best %.5f, last %.5f)", result["mi"], len(runs), *means.values())
    return result
