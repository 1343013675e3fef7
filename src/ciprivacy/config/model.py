"""The typed model of config.yaml: every block, its keys, their types and ranges.

Blocks whose keys belong to a registry entry (a defense's settings, an architecture's model
arguments, a data source's options, an attack's settings) are kept as mappings here and checked
against that entry's own settings model in ``ciprivacy.config.check``, so a plug-in's settings
are checked the same way as ours.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import MinLen
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from ciprivacy.experiments import KINDS
from ciprivacy.signature import (
    Betas,
    Ge,
    Int,
    Interval,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnit,
    PositiveFloat,
    PositiveInt,
    Probability,
    Strict,
)


def _unique(values: list[Any]) -> list[Any]:
    duplicates = sorted({str(v) for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"lists {', '.join(duplicates)} more than once")
    return values


def _listed(value: Any) -> Any:
    """One name given alone is a list of one."""
    return [value] if isinstance(value, str) else value


Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
NameList = Annotated[list[str], MinLen(1), AfterValidator(_unique)]
ScenarioName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_+]*$")]  # glass++
ProtocolList = Annotated[list[Name], BeforeValidator(_listed), MinLen(1), AfterValidator(_unique)]
# The blocks a protocol may change: how targets train and how they are attacked and measured,
# never what is run (experiments, data, seeds).
PROTOCOL_BLOCKS = ("target_training", "archs", "defenses", "cem", "attacks", "mine", "evaluation")
MetricBatch = Annotated[Int, Ge(7)]  # the paper's SSIM window (7) spans images: at least 7 per batch


class Experiment(Strict):
    """One experiment of the paper: its grid and the kind of outputs it writes."""

    enabled: bool
    kind: Literal[KINDS]  # type: ignore[valid-type]
    datasets: NameList
    archs: NameList
    defenses: NameList
    scenarios: NameList | None = None
    compensation_attack: bool | None = None  # ablation: also attack the compensation module's output
    warmup: NonNegativeInt | None = None  # latency: untimed runs first
    repeats: PositiveInt | None = None  # latency: timed single-sample runs
    batch_size: PositiveInt | None = None  # latency: samples per timed run
    protocol: ProtocolList | None = None  # the evaluation protocols it runs under; default: the top-level list

    @model_validator(mode="after")
    def _keys_of_its_kind(self) -> Experiment:
        own = {"ablation": {"compensation_attack"}, "latency": {"warmup", "repeats", "batch_size"}}
        for kind, keys in own.items():
            given = sorted(k for k in keys if getattr(self, k) is not None)
            if given and self.kind != kind:
                raise ValueError(f"{', '.join(given)} only apply to experiments of kind {kind}, not {self.kind}")
        return self


class Split(Strict):
    """Fractions of the source's images in each split."""

    train: Probability
    test: Probability
    aux: Probability | None = None


class SourceBlock(Strict):
    source: str
    options: dict[str, Any] = Field(default_factory=dict)  # checked against the source's signature
    max_images: PositiveInt | None = None


class Dataset(SourceBlock):
    resolution: Annotated[Int, Ge(8)]
    channels: Literal[1, 3]
    split: Split
    split_seed: NonNegativeInt
    aux_source: SourceBlock | None = None

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> Dataset:
        parts = {"train": self.split.train, "test": self.split.test}
        if self.aux_source is not None:
            if self.split.aux:
                raise ValueError(
                    f"split.aux is {self.split.aux} but aux_source is set: the auxiliary data then comes from "
                    "aux_source, so give split.train and split.test only"
                )
        elif self.split.aux is None:
            raise ValueError("split.aux is missing; give it, or an aux_source block")
        else:
            parts["aux"] = self.split.aux
        total = sum(parts.values())
        if abs(total - 1.0) > 1e-6:
            shown = " + ".join(f"{k} {v:g}" for k, v in parts.items())
            raise ValueError(f"split fractions must sum to 1, got {shown} = {total:g}")
        return self


class ArchEntry(Strict):
    base: str | None = None  # another archs entry this one varies (its split point)
    model: dict[str, Any] = Field(default_factory=dict)  # checked against the builder's signature
    train: dict[str, Any] = Field(default_factory=dict)  # overrides of target_training, checked like it


class TargetTraining(Strict):
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    betas: Betas
    weight_decay: NonNegativeFloat
    amsgrad: bool  # Adam's AMSGrad variant
    # ReduceLROnPlateau on the epoch's training loss, or a constant lr (YAML reads a bare off as false)
    scheduler: Annotated[Literal["train_loss", "off"], BeforeValidator(lambda v: "off" if v is False else v)]
    scheduler_factor: OpenUnit
    scheduler_patience: NonNegativeInt
    hflip: bool
    color_jitter: Probability
    amp: bool
    eval_every: PositiveInt  # the selection metric every N epochs (and after the last)
    # Held out of the train split (seeded, class-stratified); the model trains on the rest. 0 = none.
    validation_fraction: Annotated[float, Interval(ge=0, lt=1)]
    # Which state is kept: the last, or the best accuracy on the held-out part / the test split.
    selection: Literal["last", "best_validation", "best_test"]
    select_after: NonNegativeInt  # epochs before (and at) which no state is selected

    @model_validator(mode="after")
    def _selection_is_possible(self) -> TargetTraining:
        if self.selection == "best_validation" and self.validation_fraction <= 0:
            raise ValueError("selection best_validation needs validation_fraction > 0 (a part to select on)")
        if self.selection != "last" and self.select_after >= self.epochs:
            raise ValueError(
                f"select_after is {self.select_after} but training runs {self.epochs} epochs: "
                "no epoch could be selected"
            )
        return self


class Cem(Strict):
    """The CEM plug-in's settings (defense name suffix +cem)."""

    lambda_: NonNegativeFloat = Field(alias="lambda")
    sigma: NonNegativeFloat
    clusters_per_class: PositiveInt
    kmeans_iters: PositiveInt


class Mine(Strict):
    critic: str  # a registered MINE critic
    epochs: PositiveInt
    batch_size: Annotated[Int, Ge(2)]
    lr: PositiveFloat
    optimizer: Literal["adam", "adamw"]
    betas: Betas | dict[Name, Betas]  # one pair, or one per architecture (registry name)
    weight_decay: NonNegativeFloat
    # ReduceLROnPlateau in mode min on the evaluation estimate (the authors'), or none
    scheduler: Annotated[Literal["plateau", "off"], BeforeValidator(lambda v: "off" if v is False else v)]
    scheduler_factor: OpenUnit
    scheduler_patience: NonNegativeInt
    # best / last evaluation value, or the evaluation value at the epoch the held-out part picks
    report: Literal["best", "last", "validation"]
    validation_fraction: Annotated[float, Interval(ge=0, lt=1)]  # of the training split, held out of training
    restarts: PositiveInt  # independent critic initialisations; mi is their mean
    estimate: Literal["pooled", "per_batch_mean"]  # one DV bound over the set, or the mean of per-batch bounds
    eval_every: PositiveInt
    max_train: Annotated[Int, Ge(2)] | None
    z_placement: Literal["top_left", "centre"]
    normalize_x: bool

    @model_validator(mode="after")
    def _validation_part_when_reported(self) -> Mine:
        if self.report == "validation" and self.validation_fraction <= 0:
            raise ValueError("report validation needs validation_fraction > 0 (a held-out part to choose the epoch)")
        return self


class Evaluation(Strict):
    batch_size: PositiveInt
    amp: bool
    cem_sigma: PositiveFloat
    cem_clusters_per_class: PositiveInt
    cem_kmeans_iters: PositiveInt


class Figures(Strict):
    n_samples: PositiveInt
    per_target: bool


class Config(Strict):
    """config.yaml; presets and --config overrides are merged over it before it is checked.

    ``protocol`` names the evaluation protocols every experiment runs under (results side by
    side under results/<preset>/<protocol>/); ``protocols`` defines each as overrides of the
    blocks in PROTOCOL_BLOCKS, merged over the config for that protocol's jobs."""

    preset: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")]
    # results/<preset>/<summary>/ holds what spans experiments and protocols (a preset layered on
    # another names its own, so the two commands never rewrite each other's summaries)
    summary: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")] = "summary"
    device: Annotated[str, StringConstraints(pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")]
    channels_last: bool
    compile: bool  # torch.compile of the step functions (ciprivacy.compilation)
    seeds: Annotated[list[NonNegativeInt], MinLen(1), AfterValidator(_unique)]
    scenarios: NameList
    experiments: Annotated[dict[Name, Experiment], MinLen(1)]
    cem: Cem
    datasets: Annotated[dict[Name, Dataset], MinLen(1)]
    archs: Annotated[dict[Name, ArchEntry], MinLen(1)]
    defenses: dict[Name, dict[str, Any]]  # each checked against its defense's signature
    target_training: TargetTraining
    attacks: dict[ScenarioName, dict[str, Any]]  # each checked against its scenario's settings
    # The generative prior of the scenarios that need one (GLASS): one per dataset, trained on its
    # aux split; checked against its family's settings (ciprivacy.priors).
    priors: dict[str, Any] = Field(default_factory=dict)
    mine: Mine
    evaluation: Evaluation
    figures: Figures
    threads: PositiveInt
    # How measurements and attacks are cut into jobs (ciprivacy.target_evaluation): one job per
    # target (its start-up paid once; each part cached, so a changed setting recomputes only its
    # part), or one per measurement and per attack scenario (more jobs at once on a cluster).
    job_grouping: Literal["scenario", "target"] = "scenario"
    protocol: ProtocolList = Field(default_factory=lambda: ["rigorous"])
    protocols: dict[Name, dict[str, Any]] = Field(default_factory=lambda: {"rigorous": {}})
