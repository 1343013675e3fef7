"""The ``ciprivacy`` command: what is registered, your own model evaluated, a results tree checked.

::

    ciprivacy list [defenses|plugins|scenarios|archs|sources|experiments ...]
                   [--config config.yaml] [--configfile PRESET ...]
    ciprivacy evaluate MODULE:FUNCTION [--data PREPARED.pt] [--settings FILE] [--scenarios ...]
                   [--device auto] [--seed 0] [--out table.csv]
    ciprivacy verify results/<preset>/manifest.json

docs/extending.md describes each; ``ciprivacy <command> --help`` lists the options.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

SECTIONS = ("defenses", "plugins", "scenarios", "archs", "sources", "experiments")


def _first_sentence(text: str) -> str:
    """The first sentence of the first paragraph, on one line."""
    paragraph = " ".join((text or "").strip().split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


def _doc(obj: Any) -> str:
    return _first_sentence(inspect.getdoc(obj) or "")


def _settings(model: Any) -> str:
    """``key=default`` for each setting of a settings model, ``key`` where it has none."""
    parts = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        parts.append(key if field.is_required() else f"{key}={field.get_default(call_default_factory=True)!r}")
    return ", ".join(parts) or "-"


def _table(rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows as aligned columns (every column but the last padded)."""
    rows = [list(map(str, r)) for r in rows]
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows]


def list_defenses() -> list[str]:
    from ciprivacy.defenses import DEFENSES
    from ciprivacy.defenses.base import defense_settings_model

    rows = [
        (name, cls.family or "-", cls.label or name, _settings(defense_settings_model(name)))
        for name, cls in sorted(DEFENSES.items())
    ]
    return [f"defenses ({len(rows)}): name, family, label, settings (config: defenses.<name>)", *_table(rows)]


def list_plugins() -> list[str]:
    from ciprivacy.defenses import PLUGINS
    from ciprivacy.defenses.base import plugin_settings_model

    rows = [(f"<defense>+{name}", _settings(plugin_settings_model(name))) for name, _ in sorted(PLUGINS.items())]
    return [f"defense plug-ins ({len(rows)}): name, settings (config: the {', '.join(PLUGINS.names())} block)"] + (
        _table(rows)
    )


def list_scenarios() -> list[str]:
    from ciprivacy.attacks import SCENARIOS

    rows = [
        (name, entry.method, entry.label, f"attacks.{entry.block}" + ("" if entry.on_link else " (not on the link)"))
        for name, entry in sorted(SCENARIOS.items())
    ]
    return [f"threat scenarios ({len(rows)}): name, attack, label, settings block", *_table(rows)]


def list_archs() -> list[str]:
    from ciprivacy.models import ARCHS
    from ciprivacy.signature import settings_model

    rows = [
        (
            name,
            _settings(settings_model(build, skip=("num_classes", "image_shape"))),
            _doc(build),
        )
        for name, build in sorted(ARCHS.items())
    ]
    return [f"architectures ({len(rows)}): name, settings (config: archs.<name>.model), description", *_table(rows)]


def list_sources() -> list[str]:
    from ciprivacy.config.check import source_settings_model
    from ciprivacy.data import SOURCES

    rows = [(name, _settings(source_settings_model(load)), _doc(load)) for name, load in sorted(SOURCES.items())]
    return [
        f"data sources ({len(rows)}): name, options (config: datasets.<name>.source / options), description",
        *_table(rows),
    ]


def list_experiments(config: str | None, presets: Sequence[str]) -> list[str]:
    """The experiments of a config (``config.yaml`` with presets over it), checked as the
    workflow checks them, with what each runs."""
    from ciprivacy import experiments as X
    from ciprivacy.config import check_config, dataset_unavailable
    from ciprivacy.config.layers import load_yaml

    if config is None:
        if not Path("config.yaml").is_file():
            return ["experiments: no config.yaml here; give one with --config"]
        config = "config.yaml"
    layers = [(path, load_yaml(path)) for path in (config, *presets)]
    checked = check_config(layers)
    found, skipped = X.experiments(checked, unavailable=lambda name: dataset_unavailable(checked, name))
    why = X.skipped_experiments(checked, found, skipped)
    rows = []
    for name, block in checked["experiments"].items():
        if not block["enabled"]:
            state = "disabled"
        elif name in why:
            state = "skipped: " + _first_sentence(why[name].splitlines()[0].split(": ", 1)[-1])
        else:
            state = "runs"
        scenarios = block.get("scenarios") or checked["scenarios"]
        what = (
            f"datasets {','.join(block['datasets'])}; archs {','.join(block['archs'])}; "
            f"defenses {','.join(X.defense_names(block))}; scenarios {','.join(scenarios)}"
        )
        rows.append((name, block["kind"], state, what))
    source = " + ".join([config, *presets])
    return [f"experiments ({len(rows)}) of {source}: name, kind, state, what it runs", *_table(rows)]


def cmd_list(args: argparse.Namespace) -> int:
    from ciprivacy.config import ConfigError

    listers: dict[str, Callable[[], list[str]]] = {
        "defenses": list_defenses,
        "plugins": list_plugins,
        "scenarios": list_scenarios,
        "archs": list_archs,
        "sources": list_sources,
        "experiments": lambda: list_experiments(args.config, args.configfile),
    }
    unknown = [s for s in args.what if s not in listers]
    if unknown:
        print(
            f"ciprivacy list: unknown section(s) {', '.join(unknown)}; expected {', '.join(SECTIONS)}", file=sys.stderr
        )
        return 2
    blocks = []
    for section in args.what or SECTIONS:
        try:
            blocks.append("\n".join(listers[section]()))
        except (ConfigError, OSError, ValueError) as err:
            print(f"{section}: {err}", file=sys.stderr)
            return 2
    print("\n\n".join(blocks))
    return 0


def load_function(spec: str) -> Callable[[], Any]:
    """``module:function`` imported from the current folder or the Python path."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{spec} is not callable")
    return obj


def evaluate_arguments(returned: Any, data: str | None) -> dict[str, Any]:
    """``evaluate``'s keyword arguments from what the user's function returned: a mapping of
    them, or the model alone (a split model with ``edge`` and ``cloud``, or an (edge, cloud)
    pair), with the train / test / aux splits of a prepared dataset (``data``) where the
    function gives none."""
    if isinstance(returned, dict):
        kwargs = dict(returned)
    elif hasattr(returned, "edge") and hasattr(returned, "cloud"):
        kwargs = {"edge": returned.edge, "cloud": returned.cloud}
    elif isinstance(returned, (tuple, list)) and len(returned) == 2:
        kwargs = {"edge": returned[0], "cloud": returned[1]}
    else:
        raise ValueError(
            "the function must return a dict of ciprivacy.api.evaluate's arguments, a split model with edge and "
            f"cloud attributes, or an (edge, cloud) pair; got {type(returned).__name__}"
        )
    if data is not None:
        from ciprivacy.data import load_prepared

        prepared = load_prepared(data)
        kwargs.update(train=prepared.split("train"), test=prepared.split("test"), aux=prepared.split("aux")[0])
    missing = [k for k in ("edge", "cloud", "train", "test", "aux") if k not in kwargs]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}: return them from the function, or give --data for the data")
    return kwargs


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from ciprivacy.api import evaluate

    try:
        function = load_function(args.function)
    except (ValueError, ImportError, AttributeError) as err:
        print(f"ciprivacy evaluate: cannot load {args.function}: {err}", file=sys.stderr)
        return 2
    try:
        kwargs = evaluate_arguments(function(), args.data)
    except ValueError as err:
        print(f"ciprivacy evaluate: {err}", file=sys.stderr)
        return 2
    for key in ("settings", "scenarios", "device", "seed"):
        value = getattr(args, key)
        if value is not None:
            kwargs[key] = value
    table = evaluate(**kwargs)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(table.pivot_table(index="scenario", columns="metric", values="value"))
    for name, why in table.attrs.get("skipped", {}).items():
        print(f"{name} skipped: {why}")
    if args.out:
        print(f"the long table: {args.out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ciprivacy.integrity import main as integrity_main

    return integrity_main(["verify", args.manifest])


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="ciprivacy",
        description="Model inversion attacks and defenses in split inference (the SiftFunnel reproduction). "
        "The workflow runs with snakemake; docs/extending.md describes these commands.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ls = sub.add_parser(
        "list",
        help="registered defenses, plug-ins, scenarios, architectures, data sources and a config's experiments",
        description="One line per registered entry (plug-in packages included) and per experiment of a config.",
    )
    ls.add_argument("what", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    ls.add_argument("--config", help="the config whose experiments to list (default: ./config.yaml when present)")
    ls.add_argument("--configfile", nargs="+", default=[], metavar="PRESET", help="presets laid over it, in order")
    ls.set_defaults(run=cmd_list)
    ev = sub.add_parser(
        "evaluate",
        help="attack and measure your own split model (ciprivacy.api.evaluate)",
        description="Import MODULE, call FUNCTION() and evaluate what it returns: a dict of ciprivacy.api.evaluate's "
        "arguments, or the model alone (edge and cloud) with --data. Prints the wide table.",
    )
    ev.add_argument("function", metavar="MODULE:FUNCTION")
    ev.add_argument("--data", help="a prepared dataset of the workflow (results/<preset>/data/<name>.pt)")
    ev.add_argument("--settings", help="a YAML file of settings over the defaults (config.yaml's layout)")
    ev.add_argument("--scenarios", nargs="+", help="threat scenarios (default: whitebox blackbox graybox)")
    ev.add_argument("--device", help="auto, cpu or cuda[:i] (default: auto)")
    ev.add_argument("--seed", type=int)
    ev.add_argument("--out", help="write the long table here (CSV)")
    ev.set_defaults(run=cmd_evaluate)
    ve = sub.add_parser(
        "verify",
        help="check a results tree against its manifest (python -m ciprivacy.integrity verify)",
        description="Report missing and changed result files; exit status 1 if any (docs/integrity.md).",
    )
    ve.add_argument("manifest", help="results/<preset>/manifest.json")
    ve.set_defaults(run=cmd_verify)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # `ciprivacy list | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
