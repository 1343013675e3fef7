"""What every defense provides to training, attacks and measurements.

A defense may change the split model (build), the training loss (loss) and the features the
edge transmits (observe). Attacks and measurements only ever see ``observe(model.edge(x))``.

A defense is one class, registered by name: ``@DEFENSES.register("mine")`` on a
``@dataclass(kw_only=True, eq=False)`` subclass of ``Defense`` whose fields are its settings
(the ``defenses.<name>`` keys of the config, typed and range-checked from their annotations),
with the class attributes below for what the tables need. docs/extending.md walks through one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel

from ciprivacy.data.batches import iterate_batches
from ciprivacy.models import SplitModel, create_model
from ciprivacy.registry import Registry
from ciprivacy.signature import settings_model

DEFENSES: Registry = Registry("defense", group="ciprivacy.defenses")
# Plug-ins wrap any defense: ``noise+cem`` is the noise defense with the CEM wrapper around it.
PLUGINS: Registry = Registry("defense plug-in", group="ciprivacy.defense_plugins")


class Defense:
    """The unprotected baseline; other defenses override what they change."""

    name: ClassVar[str] = "base"  # set by DEFENSES.register
    # The defense family the paper's tables group rows by, and the row label.
    family: ClassVar[str] = ""
    label: ClassVar[str] = ""
    # Layers the defense adds to the plain edge; a gray-box attacker mirrors them.
    extra_edge_layers: ClassVar[int] = 0
    # True when the defense only perturbs the unprotected model's z: it reuses that model
    # instead of training its own (ciprivacy.posthoc).
    uses_unprotected_model: ClassVar[bool] = False

    @property
    def settings(self) -> dict[str, Any]:
        """The settings the defense was made with, under their config names, as plain values."""
        if hasattr(self, "_settings"):
            return dict(self._settings)
        model = settings_model(type(self), skip=("base",))
        return {(f.alias or n): _plain(getattr(self, n)) for n, f in model.model_fields.items()}

    def build(self, arch: str, num_classes: int, image_shape: tuple[int, int, int], arch_settings: dict) -> SplitModel:
        return create_model(arch, num_classes, image_shape, **arch_settings)

    def setup(self, model: SplitModel, optimizer: torch.optim.Optimizer, train_size: int, train: dict[str, Any]):
        """Called once before training; may add auxiliary modules or wrap model and optimizer
        (DP-SGD). Returns the (model, optimizer) pair the training loop must use."""
        return model, optimizer

    def unwrap(self, model: torch.nn.Module) -> SplitModel:
        """The plain split model inside whatever setup() wrapped it in (for saving)."""
        return model

    def batches(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, gen: torch.Generator):
        """Training batches of one epoch (DP-SGD replaces this with Poisson sampling)."""
        return iterate_batches(images, labels, batch_size, shuffle=True, gen=gen)

    def loss(self, model: SplitModel, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        return F.cross_entropy(model(x), y)

    def report(self) -> dict[str, Any]:
        """Defense-specific results to store with the model and show in tables (e.g. epsilon)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """State of auxiliary modules and optimizers, for checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"defense {self.name!r} keeps no state but a checkpoint holds {sorted(state)}")

    def start_epoch(
        self, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, epoch: int, batch_size: int
    ) -> None:
        """Called before each training epoch with the whole training split (uint8, on the
        device); a plug-in fits per-epoch state here (CEM's K-means). No-op by default."""

    def observe(self, z: torch.Tensor) -> torch.Tensor:
        """The features as they leave the device (after any perturbation the defense adds)."""
        return z

    def observe_parts(self, z: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``observe(z)`` split into the features before its last additive N(0, std^2 I) noise
        and that std (0.0 when it adds none): the CEM measure needs the noise apart."""
        return self.observe(z), 0.0

    def forward(self, model: SplitModel, x: torch.Tensor) -> torch.Tensor:
        """Inference as deployed: the cloud receives the observed features."""
        return model.cloud(self.observe(model.edge(x)))


def _plain(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def split_plugins(name: str) -> tuple[str, list[str]]:
    """``"noise+cem"`` -> ``("noise", ["cem"])``: the registry defense and its plug-ins, in order."""
    base, *plugins = name.split("+")
    return base, plugins


def defense_settings_model(kind: str) -> type[BaseModel]:
    """The typed settings of a registered defense: its constructor's keyword arguments."""
    return settings_model(DEFENSES.get(kind), name=f"{kind}_settings")


def plugin_settings_model(plugin: str) -> type[BaseModel]:
    """The typed settings of a plug-in: its constructor's keyword arguments but the defense it wraps."""
    return settings_model(PLUGINS.get(plugin), skip=("base",), name=f"{plugin}_settings")


def _construct(cls: type, model: type[BaseModel], settings: dict[str, Any], **positional: Any) -> Any:
    checked = model.model_validate(settings)
    values = {name: getattr(checked, name) for name in type(checked).model_fields}
    defense = cls(**positional, **values)
    if not dataclasses.is_dataclass(defense):
        defense._settings = checked.model_dump(by_alias=True)
    return defense


def create_defense(name: str, **settings: Any) -> Defense:
    """The defense ``name`` with its settings checked and converted to their declared types;
    each plug-in suffix wraps it and takes its settings from the key of its own name
    (``settings["cem"]``), which the base defense never sees."""
    base, plugins = split_plugins(name)
    for plugin in plugins:
        PLUGINS.get(plugin)  # unknown plug-ins fail before anything is built
        if plugin not in settings:
            raise KeyError(f"defense {name!r} needs the settings of its plug-in {plugin!r} under the key {plugin!r}")
    own = {k: v for k, v in settings.items() if k not in PLUGINS}  # plug-in settings are never the base's
    defense = _construct(DEFENSES.get(base), defense_settings_model(base), own)
    for plugin in plugins:
        defense = _construct(PLUGINS.get(plugin), plugin_settings_model(plugin), settings[plugin], base=defense)
    return defense
