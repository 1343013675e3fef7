"""Evaluate your own split model against the paper's attacks, without the workflow.

::

    import ciprivacy.api as cp

    table = cp.evaluate(edge, cloud, train=(x_train, y_train), test=(x_test, y_test), aux=x_aux)

``evaluate`` takes a trained split model (the ``edge`` module the device runs and the ``cloud``
module that classifies what it sends), an optional ``observe`` function for what travels on the
link, and image tensors. It runs the threat scenarios (white-box rMLE, black-box and gray-box
inverse networks; GLASS and GLASS++ when given a generative prior) and every measure of the
workflow (test accuracy, MSE / PSNR / SSIM per image and as the paper computes them, MINE's
I(x; z), delta(z), |theta_edge|, the CEM bound) with the workflow's own code
(``attacks.attack_target``, ``measure.target_measures``, ``measure.mutual_information``), and
returns one tidy table in the layout of the workflow's ``results_long.csv``.

Settings default to config.yaml's ``attacks``, ``mine`` and ``evaluation`` blocks: the paper's
sizes, which want a GPU for CIFAR-10-sized data. config.yaml is not installed with the package,
so a copy of those blocks ships as ``ciprivacy/defaults.yaml`` (``default_settings()``; a test
keeps the two equal). docs/extending.md shows a run.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from pydantic import BaseModel, ValidationError
from torch import nn

from ciprivacy.attacks import SCENARIOS, attack_target
from ciprivacy.config.layers import deep_merge, load_yaml
from ciprivacy.config.model import Config, Evaluation, Mine
from ciprivacy.data.batches import to_float
from ciprivacy.defenses import Defense
from ciprivacy.measure import mutual_information, target_measures
from ciprivacy.models import ARCHS, SplitModel
from ciprivacy.priors import Prior, fit_prior
from ciprivacy.reporting.results import tidy_records
from ciprivacy.runtime import pick_device, seed_everything
from ciprivacy.target import Target

__all__ = ["DEFAULT_SCENARIOS", "default_settings", "evaluate", "resolve_settings"]

log = logging.getLogger(__name__)

# The paper's three threat scenarios; any registered name may be asked for (``ciprivacy list``).
DEFAULT_SCENARIOS = ("whitebox", "blackbox", "graybox")
# The blocks of a config ``evaluate`` reads; a settings file may hold config.yaml's other blocks.
BLOCKS = ("attacks", "mine", "evaluation", "priors")

Images = torch.Tensor | np.ndarray


class ObservedLink(Defense):
    """The link of a split model given to ``evaluate``: ``observe(edge(x))``, or z as it is."""

    def __init__(self, observe: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.fn = observe

    def observe(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.fn is None else self.fn(z)


def default_settings() -> dict[str, Any]:
    """config.yaml's ``attacks``, ``mine`` and ``evaluation`` blocks, from the package's copy."""
    text = resources.files("ciprivacy").joinpath("defaults.yaml").read_text()
    return yaml.safe_load(text)


def _typed(model: type[BaseModel], block: Any, where: str) -> dict[str, Any]:
    if block is None:
        raise ValueError(f"settings: no {where} block")
    try:
        return model.model_validate(block).model_dump(by_alias=True)
    except ValidationError as err:
        raise ValueError(f"settings {where}: {err}") from None


def resolve_settings(
    settings: Mapping[str, Any] | str | os.PathLike | None = None, scenarios: Sequence[str] = DEFAULT_SCENARIOS
) -> dict[str, Any]:
    """The settings ``evaluate`` runs with, typed and checked: ``default_settings()`` with
    ``settings`` laid over them key by key (as a preset is laid over config.yaml).

    ``settings`` is a mapping in config.yaml's layout (``{"attacks": {"blackbox": {"epochs":
    5}}}``) or a YAML file of one (config.yaml, a preset such as presets/demo.yaml). Only the
    ``attacks`` blocks of ``scenarios``, ``mine``, ``evaluation`` and ``priors`` are read; the
    config's other blocks are ignored, any other key is an error."""
    layer = load_yaml(settings) if isinstance(settings, (str, os.PathLike)) else dict(settings or {})
    unknown = sorted(set(layer) - set(Config.model_fields))
    if unknown:
        raise ValueError(f"settings: unknown block(s) {', '.join(map(repr, unknown))}; read: {', '.join(BLOCKS)}")
    merged = deep_merge(default_settings(), {k: layer[k] for k in BLOCKS if layer.get(k) is not None})
    attacks = {}
    for name in scenarios:
        entry = SCENARIOS.get(name)  # an unknown scenario fails with the known names
        attacks[entry.block] = _typed(entry.settings, merged["attacks"].get(entry.block), f"attacks.{entry.block}")
    return {
        "attacks": attacks,
        "mine": _typed(Mine, merged["mine"], "mine"),
        "evaluation": _typed(Evaluation, merged["evaluation"], "evaluation"),
        "priors": merged.get("priors"),  # only from the caller: checked by the prior's family when trained
    }


def _uint8(images: Images, what: str) -> torch.Tensor:
    """N x C x H x W images as uint8, the workflow's storage: float images in [0, 1] are rounded
    to the nearest of 256 levels."""
    x = torch.as_tensor(images)
    if x.dim() != 4:
        raise ValueError(f"{what} images must be N x C x H x W, got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise ValueError(f"{what} images must be uint8 or float in [0, 1], got {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{what} images of type {x.dtype} must lie in [0, 1], got [{x.min():.3g}, {x.max():.3g}]")
    return x.mul(255).round_().to(torch.uint8)


def _split(data: Any, what: str, labels: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(images, labels) of a split given as images alone or as an (images, labels) pair."""
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"{what} must be images or an (images, labels) pair, got {len(data)} items")
        images, y = data
    else:
        images, y = data, None
    x = _uint8(images, what)
    if y is None:
        if labels:
            raise ValueError(f"{what} needs labels: pass ({what}_images, {what}_labels)")
        return x, None
    y = torch.as_tensor(y).long()
    if y.shape != (x.shape[0],):
        raise ValueError(f"{what} labels must be a vector of {x.shape[0]} class indices, got shape {tuple(y.shape)}")
    return x, y


def _prior_input(
    name: str, prior: Prior | str | os.PathLike | None, settings: dict, aux: torch.Tensor, cache: dict
) -> tuple[dict[str, Any] | None, str | None]:
    """The files a scenario reads, as the workflow hands them over (``Scenario.inputs``), or
    None and why it cannot run here."""
    entry = SCENARIOS.get(name)
    other = [need for need in entry.inputs if need != "prior"]
    if other:
        return None, f"scenario {name!r} reads {', '.join(other)}, which only the workflow provides"
    if "prior" not in entry.inputs:
        return {}, None
    if prior is not None:
        return {"prior": os.fspath(prior) if isinstance(prior, (str, os.PathLike)) else prior}, None
    if settings["priors"]:
        if "prior" not in cache:
            log.info("training a %s prior on the auxiliary images", settings["priors"].get("family"))
            cache["prior"] = fit_prior(aux, {**settings["priors"], "device": str(aux.device)})[0]
        return {"prior": cache["prior"]}, None
    return None, (
        f"scenario {name!r} searches a generative prior: pass prior= (a Prior, or a prior file from the workflow's "
        "train_prior rule), or settings with a priors block to train one on the auxiliary images"
    )


def evaluate(
    edge: nn.Module,
    cloud: nn.Module,
    *,
    train: Images | tuple[Images, Any],
    test: tuple[Images, Any],
    aux: Images | tuple[Images, Any],
    observe: Callable[[torch.Tensor], torch.Tensor] | Defense | None = None,
    scenarios: Sequence[str] = DEFAULT_SCENARIOS,
    settings: Mapping[str, Any] | str | os.PathLike | None = None,
    arch: str | None = None,
    arch_settings: Mapping[str, Any] | None = None,
    prior: Prior | str | os.PathLike | None = None,
    names: Mapping[str, str] | None = None,
    device: str = "auto",
    seed: int = 0,
) -> pd.DataFrame:
    """Attack a trained split model in every threat scenario and measure it; one tidy table.

    Args:
        edge: the part the device runs; it takes images in [0, 1] (normalise inside it) and
            returns the features z.
        cloud: the part the cloud runs on what the link carries; it returns class logits.
        train: the classifier's training images (labels optional): MINE's critic trains on them.
        test: (images, labels): accuracy, the measures of z, and the images the attacks
            reconstruct.
        aux: the attacker's auxiliary images (labels optional, unused): the inverse networks
            train on them, and MINE is evaluated on them (the authors' protocol).
        observe: what travels on the link, ``observe(edge(x))``: a function, or a defense
            (``ciprivacy.defenses.create_defense("noise", sigma=0.5)``, whose added edge layers
            the gray-box attacker mirrors); None sends z as it is.
        scenarios: registered threat scenarios to run (``ciprivacy list``).
        settings: overrides of the default settings in config.yaml's layout, or a YAML file of
            them (``resolve_settings``).
        arch: a registered architecture the edge is an instance of, with ``arch_settings``
            (its builder's keywords): the black- and gray-box inverse networks then mirror its
            plain edge, as in the workflow. None: they are built from z's shape and the image
            shape alone.
        prior: a generative prior for GLASS / GLASS++ (a ``Prior`` or the workflow's prior
            file); without it, and without a ``priors`` block in ``settings`` to train one on
            ``aux``, those scenarios are skipped with a warning.
        names: the table's ``dataset``, ``arch`` and ``defense`` columns (defaults: ``custom``,
            ``arch`` or ``custom``, the defense's registry name or ``custom``).
        device: ``auto`` (the GPU when there is one), ``cpu`` or ``cuda[:i]``.
        seed: seeds Python, NumPy and torch before each measure and attack, as each workflow
            job does.

    Images are N x C x H x W tensors (or arrays), uint8 or float in [0, 1]; float images are
    rounded to 8 bits, as the workflow stores them. The black-/gray-box attacks and the paper's
    MINE critic need z of shape C' x H/2^k x W/2^k (a convolutional edge); for other shapes run
    ``scenarios=("whitebox",)`` with ``settings={"mine": {"critic": "mlp"}}``.

    Returns:
        The long table of the workflow's results_long.csv: columns ``protocol`` (``api``),
        ``dataset``, ``arch``, ``defense``, ``scenario``, ``seed``, ``metric``, ``value``,
        ``ci_low``, ``ci_high`` (a 95 % interval where one is known: MINE's restarts).
        Scenario ``target`` holds the measures of the model and its link (``test_acc_pct``,
        ``delta_z``, ``edge_params``, ``mi``, ``cem_mi_bound``; ``cem_mse_bound`` when the link
        adds Gaussian noise) and their marks (``chance_pct``, ``learned``,
        ``mi_indistinguishable_from_zero``), each attack's scenario its ``mse``, ``psnr``, ``ssim`` and
        ``mse_paper``, ``psnr_paper``, ``ssim_paper``. ``table.pivot_table(index="scenario",
        columns="metric", values="value")`` is the wide view. ``table.attrs["skipped"]`` maps
        each scenario that did not run to why; ``table.attrs["records"]`` holds the full
        records (training histories, the attacker's size, ...), as the workflow's JSON files.

    Your modules are not changed: the evaluation runs on copies, in eval mode.
    """
    config = resolve_settings(settings, scenarios)
    device_ = pick_device(device)
    x_train, _ = _split(train, "train", labels=False)
    x_test, y_test = _split(test, "test", labels=True)
    x_aux, _ = _split(aux, "aux", labels=False)
    shapes = {what: tuple(x.shape[1:]) for what, x in (("train", x_train), ("test", x_test), ("aux", x_aux))}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"train, test and aux images differ in shape: {shapes}")
    if arch is not None:
        ARCHS.get(arch)  # an unknown name fails with the known ones
    x_train, x_test, y_test, x_aux = (t.to(device_) for t in (x_train, x_test, y_test, x_aux))
    defense = observe if isinstance(observe, Defense) else ObservedLink(observe)
    model = SplitModel(copy.deepcopy(edge), copy.deepcopy(cloud)).to(device_).eval().requires_grad_(False)
    with torch.no_grad():
        num_classes = int(defense.forward(model, to_float(x_test[:1])).shape[1])
    if int(y_test.max()) >= num_classes or int(y_test.min()) < 0:
        raise ValueError(f"test labels must lie in [0, {num_classes}): the cloud returns {num_classes} logits")
    own = dict(names or {})
    meta = {
        "protocol": "api",
        "dataset": own.get("dataset", "custom"),
        "arch": own.get("arch", arch or "custom"),
        "defense": own.get("defense", defense.name if isinstance(observe, Defense) else "custom"),
        "seed": int(seed),
        "num_classes": num_classes,
        "image_shape": list(x_test.shape[1:]),
        "arch_settings": dict(arch_settings or {}),
    }
    if arch is not None:
        meta["arch_type"] = arch
    target = Target(model, defense, meta)

    seed_everything(seed)
    evaluation = target_measures(target, x_test, y_test, {**config["evaluation"], "seed": seed})
    mi = mutual_information(target, x_train, x_aux, {**config["mine"], "seed": seed})
    attacks, skipped, cache = [], {}, {}
    for name in scenarios:
        inputs, why = _prior_input(name, prior, config, x_aux, cache)
        if inputs is None:
            skipped[name] = why
            warnings.warn(f"{why}; skipped", stacklevel=2)
            continue
        block = config["attacks"][SCENARIOS.get(name).block]
        gen = seed_everything(seed)
        result, _, _ = attack_target(name, target, x_aux, x_test, {**block, "seed": seed}, gen, inputs=inputs)
        attacks.append(result)
    table = tidy_records([evaluation], [mi], attacks, [meta])
    table.attrs["skipped"] = skipped
    table.attrs["records"] = {"evaluation": evaluation, "mi": mi, "attacks": attacks}
    return table
