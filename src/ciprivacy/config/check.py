"""Checking the config once, before any job: every value converted to its declared type and
range-checked, every unknown key rejected with the nearest known name, every name checked
against its registry; all problems in one short message that names each key path and the file
(or ``--config``) that set it.

The types come from two places: ``ciprivacy.config.model`` for the workflow's own blocks, and
the signatures of registry entries for the blocks they own (a defense's settings, an
architecture's model arguments, a data source's options, an attack's settings). We use pydantic
for both: it converts '1.0', 1 and 1.0 to one value and 'false' to False, so params, and with
them Snakemake's rerun decisions, do not depend on how a value was spelled; and it reads the
same annotations the code declares, so a plug-in's settings are checked like ours.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from ciprivacy.config.layers import Layer, merge_layers, source_of
from ciprivacy.config.model import Cem, Config, TargetTraining
from ciprivacy.config.variants import DEFENSE_RESERVED, arch_block, base_chain, defense_entry
from ciprivacy.signature import Strict, settings_model


class ConfigError(ValueError):
    """A config that cannot run: the message lists every problem."""


@dataclass(frozen=True)
class Problem:
    path: tuple[Any, ...]
    message: str


# ---------------------------------------------------------------------------------------------
# Turning pydantic's errors into one line each


def _unwrap(annotation: Any) -> Any:
    """The type inside Annotated[...] and Optional[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the block at ``loc`` (a path below ``model``) may hold, or [] when it is free-form."""
    annotation: Any = model
    for key in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {(f.alias or n): f for n, f in annotation.model_fields.items()}
            fields.update(annotation.model_fields)
            if key not in fields:
                return []
            annotation = fields[key].annotation
            if fields[key].metadata:
                annotation = typing.Annotated[(annotation, *fields[key].metadata)]
        elif typing.get_origin(annotation) in (dict, Mapping):
            annotation = typing.get_args(annotation)[1]
        elif typing.get_origin(annotation) in (list, tuple):
            args = typing.get_args(annotation)
            annotation = args[0] if args else Any
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or n for n, f in annotation.model_fields.items()]
    return []


_EXPECTED = {
    "greater_than_equal": "expected a number >= {ge}",
    "greater_than": "expected a number > {gt}",
    "less_than_equal": "expected a number <= {le}",
    "less_than": "expected a number < {lt}",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "string_type": "expected text",
    "string_pattern_mismatch": "expected text matching {pattern}",
    "literal_error": "expected one of {expected}",
    "dict_type": "expected a block of settings (a mapping)",
    "model_type": "expected a block of settings (a mapping)",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "too_short": "expected at least {min_length} item(s)",
    "too_long": "expected at most {max_length} item(s)",
}


def _problem(error: dict[str, Any], prefix: tuple[Any, ...], model: type[BaseModel]) -> Problem:
    loc = tuple(error["loc"])
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        known = known_keys(model, loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else "."
        listing = f" Known keys: {', '.join(known)}." if known else ""
        return Problem(prefix + loc, f"unknown key{hint}{listing}")
    if kind == "missing":
        return Problem(prefix + loc, "is missing (required)")
    if kind in ("value_error", "assertion_error"):
        return Problem(prefix + loc, str(ctx.get("error") or error["msg"]).removeprefix("Value error, "))
    template = _EXPECTED.get(kind)
    expected = template.format(**ctx) if template else error["msg"]
    return Problem(prefix + loc, f"{error.get('input')!r}; {expected}")


def _sets(own: Any, loc: tuple[Any, ...]) -> bool:
    """Whether the mapping ``own`` itself holds the key path ``loc``."""
    for key in loc:
        if not isinstance(own, Mapping) or key not in own:
            return False
        own = own[key]
    return True


def _validate(
    model: type[BaseModel], value: Any, prefix: tuple[Any, ...], problems: list[Problem], own: Any = None
) -> BaseModel | None:
    """``model.model_validate(value)``, its errors appended as problems under ``prefix``. With
    ``own`` (what a variant entry itself sets, merged over its base's) errors on keys it
    inherited are left to the entry that set them."""
    try:
        return model.model_validate(value)
    except ValidationError as err:
        for error in err.errors():
            if own is None or _sets(own, tuple(error["loc"])):
                problems.append(_problem(error, prefix, model))
        return None


def _field_type(field: Any) -> Any:
    """A model field's annotation with its constraints (pydantic keeps them apart)."""
    return typing.Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


def _partial(model: type[BaseModel], name: str) -> type[BaseModel]:
    """``model`` with every field optional: a block of overrides of it."""
    fields = {n: (_field_type(f) | None, Field(None, alias=f.alias)) for n, f in model.model_fields.items()}
    return create_model(name, __base__=Strict, **fields)


def _overrides(model: type[BaseModel], value: Any, prefix: tuple, problems: list[Problem]) -> dict[str, Any]:
    """A block of overrides of ``model``'s keys, typed (only the keys it sets)."""
    checked = _validate(_partial(model, f"{model.__name__}Overrides"), value or {}, prefix, problems)
    return checked.model_dump(by_alias=True, exclude_unset=True) if checked is not None else {}


# ---------------------------------------------------------------------------------------------
# The blocks whose keys come from a registry entry


def source_settings_model(source: Any) -> type[BaseModel]:
    """A data source's options: its builder's keyword arguments but the image size it is given.
    Path options may be unset (null): an experiment whose data is not there is skipped with a
    note naming the setting, not stopped (ciprivacy.data.availability)."""
    model = settings_model(source, skip=("resolution", "channels"), name=f"{source.__name__}_options")
    paths = {need.option for need in getattr(source, "path_needs", ())}
    fields = {
        n: (_field_type(f) | None, None) if n in paths else (_field_type(f), ... if f.is_required() else f.default)
        for n, f in model.model_fields.items()
    }
    return create_model(model.__name__, __base__=Strict, **fields)


def _check_datasets(config: dict[str, Any], problems: list[Problem]) -> None:
    from ciprivacy.data import SOURCES

    for name, block in config["datasets"].items():
        parts = [((), block)] + ([(("aux_source",), block["aux_source"])] if block.get("aux_source") else [])
        for path, part in parts:
            where = ("datasets", name, *path)
            if part["source"] not in SOURCES:
                problems.append(
                    Problem((*where, "source"), f"{part['source']!r}; expected one of {', '.join(SOURCES.names())}")
                )
                continue
            model = source_settings_model(SOURCES.get(part["source"]))
            checked = _validate(model, part.get("options") or {}, (*where, "options"), problems)
            if checked is not None:
                part["options"] = checked.model_dump(by_alias=True)


def _chain_problems(config: dict[str, Any], kind: str, registry: Any, problems: list[Problem]) -> dict[str, str]:
    """Registry entry behind every entry of ``config[kind]``; broken chains become problems."""
    kinds = {}
    for name in config[kind]:
        try:
            chain = base_chain(config, kind, name)
        except ValueError as err:
            problems.append(Problem((kind, name, "base"), str(err)))
            continue
        if chain[-1] not in registry:
            problems.append(
                Problem(
                    (kind, name),
                    f"{chain[-1]!r} is not a registered {registry.kind}; expected one of "
                    f"{', '.join(registry.names())}, or an entry with 'base: <one of them>'",
                )
            )
            continue
        kinds[name] = chain[-1]
    return kinds


def _check_archs(config: dict[str, Any], problems: list[Problem]) -> None:
    from ciprivacy.models import ARCHS

    kinds = _chain_problems(config, "archs", ARCHS, problems)
    for name, arch in kinds.items():
        entry = config["archs"][name]
        model = settings_model(ARCHS.get(arch), skip=("num_classes", "image_shape"), name=f"{arch}_model")
        merged = arch_block(config, name)[1]["model"]
        own = entry.get("model") or {}
        base = entry.get("base") is not None
        checked = _validate(model, merged, ("archs", name, "model"), problems, own=own if base else None)
        if checked is not None:
            dumped = checked.model_dump(by_alias=True)
            entry["model"] = {k: dumped[k] for k in own} if base else dumped
        entry["train"] = _overrides(TargetTraining, entry.get("train"), ("archs", name, "train"), problems)


def _check_defenses(config: dict[str, Any], problems: list[Problem]) -> None:
    from ciprivacy.defenses import DEFENSES
    from ciprivacy.defenses.base import defense_settings_model

    kinds = _chain_problems(config, "defenses", DEFENSES, problems)
    for name, kind in kinds.items():
        entry = config["defenses"][name]
        merged = {k: v for k, v in defense_entry(config, name)[1].items() if k not in DEFENSE_RESERVED}
        own = {k: v for k, v in entry.items() if k not in DEFENSE_RESERVED}
        base = entry.get("base") is not None
        checked = _validate(defense_settings_model(kind), merged, ("defenses", name), problems, own if base else None)
        if checked is not None:
            dumped = checked.model_dump(by_alias=True)
            reserved = {k: entry[k] for k in DEFENSE_RESERVED if k in entry}
            typed = {k: dumped[k] for k in own} if base else dumped
            config["defenses"][name] = {**reserved, **typed}
        if entry.get("cem") is not None:
            config["defenses"][name]["cem"] = _overrides(Cem, entry["cem"], ("defenses", name, "cem"), problems)
        if entry.get("train") is not None:
            where = ("defenses", name, "train")
            config["defenses"][name]["train"] = _overrides(TargetTraining, entry["train"], where, problems)
            if DEFENSES.get(kind).uses_unprotected_model:
                problems.append(
                    Problem(where, f"{kind} reuses the unprotected model, so it trains nothing of its own to override")
                )


def _check_attacks(config: dict[str, Any], problems: list[Problem], used: set[str]) -> None:
    from ciprivacy.attacks import SCENARIOS

    blocks = {SCENARIOS.get(s).block: s for s in SCENARIOS.names()}
    for name in list(config["attacks"]):
        if name not in blocks:
            near = difflib.get_close_matches(name, list(blocks), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            problems.append(Problem(("attacks", name), f"no threat scenario reads this block{hint}"))
            continue
        model = SCENARIOS.get(blocks[name]).settings
        checked = _validate(model, config["attacks"][name], ("attacks", name), problems)
        if checked is not None:
            config["attacks"][name] = checked.model_dump(by_alias=True)
    for scenario in sorted(used):
        if scenario in SCENARIOS and SCENARIOS.get(scenario).block not in config["attacks"]:
            block = SCENARIOS.get(scenario).block
            problems.append(Problem(("attacks", block), f"is missing: scenario {scenario!r} reads its settings here"))


def _check_priors(config: dict[str, Any], problems: list[Problem], used: set[str]) -> None:
    """The priors block, when a scenario in use needs a generative prior: typed against its
    family's settings."""
    from ciprivacy.attacks import SCENARIOS
    from ciprivacy.priors import PRIORS
    from ciprivacy.priors.train import prior_settings_model

    needing = sorted(s for s in used if "prior" in SCENARIOS.get(s).inputs)
    if not needing:
        return
    block = config.get("priors") or {}
    family = block.get("family")
    if family not in PRIORS:
        problems.append(
            Problem(
                ("priors", "family"),
                f"{family!r}; expected one of {', '.join(PRIORS.names())} "
                f"(scenarios {', '.join(needing)} train a generative prior)",
            )
        )
        return
    checked = _validate(prior_settings_model(family), block, ("priors",), problems)
    if checked is not None:
        typed = checked.model_dump()
        if (typed["steps"] is None) == (typed["epochs"] is None):
            problems.append(Problem(("priors",), "give exactly one of steps and epochs"))
        config["priors"] = typed


def _check_names(config: dict[str, Any], problems: list[Problem]) -> set[str]:
    """Names the enabled experiments use exist; returns the scenarios in use."""
    from ciprivacy.attacks import SCENARIOS
    from ciprivacy.experiments import CEM_SUFFIX
    from ciprivacy.metrics.mine import CRITICS

    used = set()
    for i, name in enumerate(config["scenarios"]):
        if name not in SCENARIOS:
            problems.append(Problem(("scenarios", i), f"{name!r}; expected one of {', '.join(SCENARIOS.names())}"))
    if config["mine"]["critic"] not in CRITICS:
        problems.append(Problem(("mine", "critic"), f"{config['mine']['critic']!r}; expected one of {CRITICS.names()}"))
    enabled = {n: b for n, b in config["experiments"].items() if b["enabled"]}
    if not enabled:
        problems.append(
            Problem(
                ("experiments",),
                "every experiment is disabled, so there is nothing to run; enable one, e.g. "
                "--config 'experiments={cifar_cnn: {enabled: true}}'",
            )
        )
    for exp, block in enabled.items():
        for kind in ("datasets", "archs", "defenses"):
            for i, name in enumerate(block[kind]):
                if name in config[kind]:
                    continue
                hint = ""
                if kind == "defenses" and name.endswith(CEM_SUFFIX):
                    hint = (
                        f"; a '{CEM_SUFFIX}' name is made by an experiment of kind cem, which runs each defense it "
                        f"lists with and without CEM: list {name[: -len(CEM_SUFFIX)]!r} in such an experiment"
                    )
                else:
                    near = difflib.get_close_matches(name, list(config[kind]), n=1)
                    hint = f"; did you mean {near[0]!r}?" if near else ""
                problems.append(Problem(("experiments", exp, kind, i), f"{name!r} has no block under {kind}{hint}"))
        scenarios = block.get("scenarios") or config["scenarios"]
        for i, name in enumerate(block.get("scenarios") or []):
            if name not in SCENARIOS:
                problems.append(
                    Problem(("experiments", exp, "scenarios", i), f"{name!r}; expected one of {SCENARIOS.names()}")
                )
        used.update(s for s in scenarios if s in SCENARIOS)
        if block["kind"] == "ablation" and block.get("compensation_attack"):
            used.add("compensation")
    return used


def _check_target_training(config: dict[str, Any], problems: list[Problem]) -> None:
    """The training settings each target of an enabled experiment gets (target_training, then
    ``archs.<a>.train``, then ``defenses.<d>.train``) check as a whole: a combination the parts
    alone do not show (``select_after`` past the epochs a defense trains) names both entries."""
    from ciprivacy.config.jobs import target_settings
    from ciprivacy.experiments import CEM_SUFFIX, defense_names

    pairs = {
        (arch, defense)
        for exp in config["experiments"].values()
        if exp["enabled"] and exp["kind"] != "latency"
        for arch in exp["archs"]
        for defense in defense_names(exp)
    }
    for arch, defense in sorted(pairs):
        train = target_settings(config, "", arch, defense, 0)["train"]
        try:
            TargetTraining.model_validate(train)
        except ValidationError as err:
            for error in err.errors():
                message = _problem(error, (), TargetTraining).message
                problems.append(
                    Problem(
                        ("defenses", defense.removesuffix(CEM_SUFFIX), "train"),
                        f"with archs.{arch}.train and target_training, the training settings {message}",
                    )
                )


def _check_buildable(config: dict[str, Any], problems: list[Problem]) -> None:
    """Every architecture in use builds at its datasets' image size (split_block in range, a
    side the network takes), on PyTorch's meta device: shapes only, no memory."""
    import torch

    from ciprivacy.models import create_model

    for name in config["archs"]:
        arch, merged = arch_block(config, name)
        shapes = {
            (config["datasets"][d]["channels"], config["datasets"][d]["resolution"])
            for exp in config["experiments"].values()
            if exp["enabled"] and name in exp["archs"]
            for d in exp["datasets"]
            if d in config["datasets"]
        }
        for channels, side in sorted(shapes):
            try:
                with torch.device("meta"):
                    create_model(arch, 10, (channels, side, side), **merged["model"])
            except (ValueError, TypeError, IndexError, AssertionError) as err:
                problems.append(
                    Problem(("archs", name, "model"), f"cannot build on {channels}x{side}x{side} images: {err}")
                )


# ---------------------------------------------------------------------------------------------


def format_problems(problems: list[Problem], layers: list[Layer]) -> str:
    lines = []
    for p in problems:
        path = ".".join(str(k) for k in p.path) or "(top level)"
        source = next((s for cut in range(len(p.path), -1, -1) if (s := source_of(p.path[:cut], layers))), None)
        lines.append(f"  {path}{f' (set in {source})' if source else ''}: {p.message}")
    head = f"the config has {len(problems)} problem{'s' if len(problems) > 1 else ''}; nothing was run:"
    return "\n".join([head, *lines])


def _typed_blocks(merged: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """The merged config typed block by block, so one bad block does not hide the others'
    problems: each top-level block that checks is dumped typed, the others are kept as given."""
    checked = _validate(Config, merged, (), problems)
    if checked is not None:
        return checked.model_dump(by_alias=True)
    config = dict(merged)
    for name, field in Config.model_fields.items():
        if name in merged and not any(p.path[:1] == (name,) for p in problems):
            config[name] = TypeAdapter(_field_type(field)).dump_python(
                TypeAdapter(_field_type(field)).validate_python(merged[name]), by_alias=True
            )
    return config


def _check_one(layers: list[Layer], problems: list[Problem]) -> dict[str, Any]:
    """The typed config of ``layers`` (one protocol's), its problems appended."""
    merged = merge_layers(layers)
    config = _typed_blocks(merged, problems)
    ill_typed = bool(problems)

    def guarded(check, *args):
        try:
            return check(config, problems, *args)
        except (KeyError, TypeError, AttributeError, ValueError):
            if not ill_typed:
                raise
            return None  # a block already reported as ill-typed: its problems are listed

    used = guarded(_check_names) or set()
    for check in (_check_datasets, _check_archs, _check_defenses):
        guarded(check)
    guarded(_check_attacks, used)
    guarded(_check_priors, used)
    if not problems:  # building needs sound names and settings
        _check_target_training(config, problems)
        _check_buildable(config, problems)
    return config


PROTOCOL_KEYS = ("protocol", "protocols")


def protocols_in_use(config: dict[str, Any]) -> list[str]:
    """Every protocol some enabled experiment runs under, in the order first named."""
    names = list(config["protocol"])
    for block in config["experiments"].values():
        if block["enabled"]:
            names += block.get("protocol") or []
    return list(dict.fromkeys(names))


def _pick(typed: Any, overlay: Any) -> Any:
    """The values of ``typed`` at the key paths ``overlay`` sets (an overlay typed in place)."""
    if isinstance(overlay, Mapping) and isinstance(typed, Mapping):
        return {k: _pick(typed.get(k), v) for k, v in overlay.items()}
    return typed


def _check_protocols(config: dict[str, Any], layers: list[Layer], problems: list[Problem]) -> None:
    """Each protocol in use is defined, overrides only what a protocol may, and gives a config
    that passes every check; its overrides are kept typed in ``config['protocols']``."""
    from ciprivacy.config.model import PROTOCOL_BLOCKS

    plain = [(label, {k: v for k, v in layer.items() if k not in PROTOCOL_KEYS}) for label, layer in layers]
    for name in protocols_in_use(config):
        if name not in config["protocols"]:
            known = ", ".join(config["protocols"])
            problems.append(Problem(("protocol",), f"{name!r} is not defined under protocols (defined: {known})"))
            continue
        overlay = config["protocols"][name]
        wrong = sorted(set(overlay) - set(PROTOCOL_BLOCKS))
        for key in wrong:
            problems.append(
                Problem(("protocols", name, key), f"a protocol may only change {', '.join(PROTOCOL_BLOCKS)}")
            )
        if wrong or not overlay:
            continue
        where = source_of(("protocols", name), layers) or "config"
        found: list[Problem] = []
        typed = _check_one([*plain, (f"{where} (protocols.{name})", overlay)], found)
        problems += [Problem(("protocols", name, *p.path), p.message) for p in found]
        if not found:
            config["protocols"][name] = _pick(typed, overlay)


def check_config(layers: list[Layer]) -> dict[str, Any]:
    """The merged config of ``layers``, typed and checked, every protocol it runs under
    included; raises ConfigError listing every problem. The result is what jobs' params are
    computed from (``effective_config`` gives one protocol's)."""
    problems: list[Problem] = []
    config = _check_one(layers, problems)
    if not problems:
        _check_protocols(config, layers, problems)
    if problems:
        raise ConfigError(format_problems(problems, layers))
    return config


def effective_config(config: dict[str, Any], protocol: str) -> dict[str, Any]:
    """The checked config as one protocol's jobs see it: its overrides merged over the rest."""
    from ciprivacy.config.layers import deep_merge

    rest = {k: v for k, v in config.items() if k not in PROTOCOL_KEYS}
    return deep_merge(rest, config["protocols"].get(protocol) or {})


def check_dict(config: dict[str, Any], label: str = "config") -> dict[str, Any]:
    """``check_config`` of one already merged config (tests, the Python API)."""
    return check_config([(label, config)])
