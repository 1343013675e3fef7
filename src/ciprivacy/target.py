"""Training the target classifier (edge + cloud) under a defense, and loading it back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from ciprivacy import optimizers
from ciprivacy.checkpoint import (
    load_checkpoint,
    remove_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ciprivacy.compilation import compile_split_model, wanted
from ciprivacy.data import load_prepared
from ciprivacy.data.batches import augment, iterate_batches
from ciprivacy.data.prepared import holdout_split
from ciprivacy.defenses import Defense, create_defense
from ciprivacy.io import file_sha256, load_torch, save_torch
from ciprivacy.models import SplitModel, count_params
from ciprivacy.models.fold import fold_batchnorm
from ciprivacy.precision import autocast, fused_optimizer_kwargs, module_layout, to_layout
from ciprivacy.runtime import configure_job, pick_device, seed_everything, without_runtime

log = logging.getLogger(__name__)


@dataclass
class Target:
    """A trained split model with the defense it was trained under."""

    model: SplitModel
    defense: Defense
    meta: dict[str, Any]
    # The edge that ``observe`` runs: for a frozen, loaded target the same function with its
    # BatchNorms folded into the convolutions (faster); None = ``model.edge`` as it is. A copy
    # taken at load time: whoever moves or changes ``model`` afterwards must reset it.
    inference_edge: torch.nn.Module | None = None

    @property
    def ident(self) -> dict[str, Any]:
        """The keys every result of this target is filed under (and the tables join on)."""
        return {
            "protocol": self.meta.get("protocol", "rigorous"),
            **{k: self.meta[k] for k in ("dataset", "arch", "defense", "seed")},
        }

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> torch.Tensor:
        """What an eavesdropper on the device-cloud link sees for inputs x in [0, 1]."""
        edge = self.model.edge if self.inference_edge is None else self.inference_edge
        return self.defense.observe(edge(x))


def arch_type(settings: dict[str, Any]) -> str:
    """The registry architecture behind a config name (``cnn_split1`` -> ``cnn``)."""
    return settings.get("arch_type", settings["arch"])


def defense_type(settings: dict[str, Any]) -> str:
    """The registry defense behind a config name (``siftfunnel_no_kl`` -> ``siftfunnel``),
    with any plug-in suffix (``noise+cem``)."""
    return settings.get("defense_type", settings["defense"])


def build_target(
    settings: dict[str, Any], num_classes: int, image_shape: tuple[int, int, int]
) -> tuple[SplitModel, Defense]:
    defense = create_defense(defense_type(settings), **settings.get("defense_settings", {}))
    model = defense.build(arch_type(settings), num_classes, image_shape, settings.get("arch_settings", {}))
    return model, defense


@torch.no_grad()
def accuracy(
    target: Target, images: torch.Tensor, labels: torch.Tensor, batch_size: int, amp: bool, channels_last: bool = False
) -> float:
    """Top-1 accuracy of the deployed pipeline (the cloud sees observed features)."""
    target.model.eval()
    device = images.device
    correct = torch.zeros((), dtype=torch.long, device=device)
    for x, y in iterate_batches(images, labels, batch_size):
        x = to_layout(x, channels_last)
        with autocast(device, amp):
            logits = target.defense.forward(target.model, x)
        correct += (logits.argmax(1) == y).sum()
    return correct.item() / max(1, labels.numel())


def train_epoch(
    model: torch.nn.Module,
    defense: Defense,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    train: dict[str, Any],
    gen: torch.Generator,
    epoch: int,
    channels_last: bool = False,
) -> torch.Tensor:
    """One epoch of optimiser steps on in-memory uint8 images; returns the mean loss as a
    device tensor, so the step loop never waits for the GPU."""
    model.train()
    device = images.device
    total = torch.zeros((), device=device)
    steps = 0
    for x, y in defense.batches(images, labels, train["batch_size"], gen):
        x = to_layout(augment(x, train["hflip"], train["color_jitter"], gen), channels_last)
        with autocast(device, bool(train["amp"])):
            loss = defense.loss(model, x, y, epoch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach().float()
        steps += 1
    return total / max(1, steps)


SELECTION_METRIC = {"best_validation": "val_acc", "best_test": "test_acc"}


def _optimizer_and_scheduler(model: torch.nn.Module, train: dict[str, Any]):
    """Adam (amsgrad when ``train['amsgrad']``) and, unless ``scheduler`` is off, the paper's
    ReduceLROnPlateau on the epoch's training loss (None when off)."""
    params = list(model.parameters())
    opt = optimizers.Adam(
        params,
        lr=train["lr"],
        betas=tuple(train["betas"]),
        weight_decay=train["weight_decay"],
        amsgrad=bool(train["amsgrad"]),
        **fused_optimizer_kwargs(params),
    )
    if train["scheduler"] == "off":
        return opt, None
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=train["scheduler_factor"], patience=train["scheduler_patience"]
    )
    return opt, sched


def train_target(data_path: str, model_path: str, settings: dict[str, Any], checkpoint: str | None = None) -> Target:
    """Train on the 'train' split, report accuracy on 'test', write state dict + metadata.

    ``train['validation_fraction']`` of the train split (seeded by the job's seed, stratified by
    class) is held out and the model trains on the rest. ``train['selection']`` says which
    state is written: the ``last``; the one with the best accuracy on the held-out part
    (``best_validation``), or on the test split (``best_test``, the authors' protocol), among
    the epochs after ``select_after``, evaluated every ``eval_every`` epochs and after the last.
    Under ``last`` and ``best_validation`` no test image is seen before the final report.

    With ``checkpoint`` (a path), the state after every epoch is written there and a rerun
    continues from it, ending with the weights an uninterrupted run would have; the file is
    removed once the model is written.
    """
    configure_job()
    train = settings["train"]
    device = pick_device(settings.get("device", "auto"))
    seed = int(settings["seed"])
    gen = seed_everything(seed)
    data = load_prepared(data_path)
    model, defense = build_target(settings, data.num_classes, data.image_shape)
    channels_last = bool(settings.get("channels_last", False))
    module_layout(model.to(device), channels_last)
    x_all, y_all = data.split("train")
    fit, held = holdout_split(y_all, float(train["validation_fraction"]), seed)
    x_train, y_train = x_all[fit].to(device), y_all[fit].to(device)
    x_val, y_val = x_all[held].to(device), y_all[held].to(device)
    x_test, y_test = (t.to(device) for t in data.split("test"))
    selection = train["selection"]
    if selection == "best_validation" and not held.numel():
        raise ValueError("train.selection best_validation needs a validation part: set train.validation_fraction > 0")

    opt, sched = _optimizer_and_scheduler(model, train)
    model, opt = defense.setup(model, opt, int(y_train.numel()), train)
    compile_split_model(model, defense, wanted(settings))
    amp = bool(train["amp"])
    target = Target(defense.unwrap(model), defense, {})
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None  # the selected state so far: epoch, score, state dict
    start = 0
    # A killed run resumes under the same results-deciding settings and the same data file
    # (whose hash load_prepared computed when it checked the file against its sidecar).
    key = (
        {"target": without_runtime(settings), "data_sha256": data.sha256 or file_sha256(data_path)}
        if checkpoint
        else None
    )
    resumed = load_checkpoint(checkpoint, key)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        if sched is not None:
            sched.load_state_dict(resumed["scheduler"])
        defense.load_state_dict(resumed["defense"])
        set_rng_state(resumed["rng"], gen)
        history, start, best = list(resumed["history"]), int(resumed["epoch"]), resumed["best"]
        log.info("resuming from %s after epoch %d", checkpoint, start)
    bar = tqdm(range(start, train["epochs"]), desc="train target", mininterval=5)
    for epoch in bar:
        defense.start_epoch(model, x_train, y_train, epoch, train["batch_size"])  # e.g. CEM's K-means
        mean_loss = train_epoch(model, defense, opt, x_train, y_train, train, gen, epoch, channels_last)
        epoch_loss = mean_loss.item()  # one host sync per epoch
        if sched is not None:
            sched.step(epoch_loss)
        record = {"epoch": epoch + 1, "train_loss": epoch_loss, "lr": opt.param_groups[0]["lr"]}
        if (epoch + 1) % train["eval_every"] == 0 or epoch + 1 == train["epochs"]:
            if held.numel():
                record["val_acc"] = accuracy(target, x_val, y_val, train["batch_size"], amp, channels_last)
            if selection == "best_test":  # the authors' protocol: the test split picks the model
                record["test_acc"] = accuracy(target, x_test, y_test, train["batch_size"], amp, channels_last)
            score = record.get(SELECTION_METRIC.get(selection, ""))
            if score is not None and epoch + 1 > train["select_after"] and (best is None or score > best["score"]):
                state = {k: v.detach().clone() for k, v in defense.unwrap(model).state_dict().items()}
                best = {"epoch": epoch + 1, "score": score, "state": state}
            bar.set_postfix(
                loss=f"{epoch_loss:.4f}", **{k: f"{record[k]:.4f}" for k in ("val_acc", "test_acc") if k in record}
            )
        history.append(record)
        log.info("epoch %s", record)
        if checkpoint is not None and epoch + 1 < train["epochs"]:
            save_checkpoint(
                checkpoint,
                {
                    "settings": key,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": None if sched is None else sched.state_dict(),
                    "defense": defense.state_dict(),
                    "rng": rng_state(gen),
                    "history": history,
                    "best": best,
                },
            )

    if best is not None:
        defense.unwrap(model).load_state_dict(best["state"])
    selected_epoch = train["epochs"] if best is None else best["epoch"]
    # The final report: the only time the test split is seen under last / best_validation.
    test_acc = accuracy(target, x_test, y_test, train["batch_size"], amp, channels_last)
    meta = {
        "protocol": settings.get("protocol", "rigorous"),
        "dataset": settings["dataset"],
        "arch": settings["arch"],
        "defense": settings["defense"],
        "arch_type": arch_type(settings),
        "defense_type": defense_type(settings),
        "seed": seed,
        "arch_settings": settings.get("arch_settings", {}),
        "defense_settings": settings.get("defense_settings", {}),
        "num_classes": data.num_classes,
        "image_shape": list(data.image_shape),
        "edge_params": count_params(defense.unwrap(model).edge),
        "test_acc": test_acc,
        "selection": {
            "rule": selection,
            "select_after": int(train["select_after"]),
            "epoch": selected_epoch,
            "val_acc": history[selected_epoch - 1].get("val_acc"),
            "test_acc": test_acc,
        },
        "split_sizes": {"train": int(fit.numel()), "validation": int(held.numel()), "test": int(y_test.numel())},
        # Dataset indices of the held-out images (positions in data.splits['train'] seeded by
        # ``seed``, ciprivacy.data.prepared.holdout_split), so later stages can leave them out.
        "validation_index": data.splits["train"][held].tolist(),
        "history": history,
        "defense_report": defense.report(),
        "device": str(device),  # a run-time setting, not in params: recorded where it ran
    }
    target.meta = meta
    save_torch({"state_dict": defense.unwrap(model).state_dict(), "meta": meta}, model_path)
    remove_checkpoint(checkpoint)
    log.info(
        "test accuracy %.4f (epoch %d, %s), edge parameters %d",
        test_acc,
        selected_epoch,
        selection,
        meta["edge_params"],
    )
    return target


def _holds_meta_tensors(model: torch.nn.Module, defense: Defense) -> bool:
    """Whether a model built on the meta device kept a tensor its state dict did not replace."""
    tensors = [*model.parameters(), *model.buffers(), *vars(defense).values()]
    tensors += [v for m in model.modules() for v in vars(m).values()]
    return any(isinstance(t, torch.Tensor) and t.is_meta for t in tensors)


# Saved weights from which on a model is rebuilt on the meta device. Drawing initial weights on
# the CPU took 1.1 s for VGG16 (134M, AMX Xeon) and 0.1 s for ResNet-18 (11M); a build on the
# meta device that runs a module (a defense's shape inference) imports PyTorch's compiler, 1.0-1.3 s.
META_REBUILD_MIN_WEIGHTS = 20_000_000


def rebuild_target(
    meta: dict[str, Any], state_dict: dict[str, torch.Tensor], meta_from: int = META_REBUILD_MIN_WEIGHTS
) -> tuple[SplitModel, Defense]:
    """A saved model with its weights, without drawing initial weights first.

    A model of ``meta_from`` weights or more is built on PyTorch's meta device (shapes only),
    then given the saved tensors: a VGG16 target's random initialisation took most of each load,
    and an evaluation job loads its target once per measurement and attack. Smaller ones, and a
    model that keeps a tensor outside its state dict (it would stay on the meta device) or cannot
    be built there, are built on the CPU under a forked generator. Either way nothing is drawn
    from the global generator, so what a job draws after loading does not depend on the target."""
    num_classes, image_shape = meta["num_classes"], tuple(meta["image_shape"])
    if sum(t.numel() for t in state_dict.values() if isinstance(t, torch.Tensor)) >= meta_from:
        try:
            with torch.device("meta"):
                model, defense = build_target(meta, num_classes, image_shape)
            model.load_state_dict(state_dict, assign=True)
            if not _holds_meta_tensors(model, defense):
                # the layout a fresh build's parameters have, which a copying load keeps
                return model.to(memory_format=torch.contiguous_format), defense
        except (NotImplementedError, RuntimeError):
            pass
    # Built on the CPU, so only the CPU generator is drawn from: no GPU's state is saved (which
    # would start CUDA in a CPU job and warn on a node with several GPUs).
    with torch.random.fork_rng(devices=[]):
        model, defense = build_target(meta, num_classes, image_shape)
    model.load_state_dict(state_dict)
    return model, defense


def load_target(model_path: str, device: torch.device | str = "cpu", channels_last: bool = False) -> Target:
    """Rebuild the split model from its metadata and load the weights (weights_only)."""
    blob = load_torch(model_path)
    meta = blob["meta"]
    model, defense = rebuild_target(meta, blob["state_dict"])
    module_layout(model.to(device), channels_last).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Target(model, defense, meta, module_layout(fold_batchnorm(model.edge), channels_last))
