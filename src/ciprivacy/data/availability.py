"""Is a dataset's raw data there? Asked before any job runs, so that an experiment whose data
the user has not supplied is reported as skipped, with the setting to fill in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ciprivacy.data.sources import SOURCES, source_problems


def source_parts(block: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """The source blocks of a dataset block, each with its key path: the block itself, then its
    ``aux_source`` when it has one."""
    parts: list[tuple[tuple[str, ...], Mapping[str, Any]]] = [((), block)]
    if isinstance(block.get("aux_source"), Mapping):
        parts.append((("aux_source",), block["aux_source"]))
    return parts


def data_unavailable(name: str, block: Mapping[str, Any]) -> str | None:
    """None when every path the dataset block ``datasets.<name>`` needs is set and exists;
    otherwise one message per unmet need, each naming the exact setting
    (``datasets.<name>.options.root``, ``datasets.<name>.aux_source.options.exclude_list``)
    and what it must hold and where that comes from.

    Only checks what can be checked without reading the data: a folder with too few images or
    unreadable files is reported later, as an error, by ``prepare_dataset``. An unknown source
    name raises the registry's KeyError (a config mistake, not missing data).
    """
    messages = []
    for path, part in source_parts(block):
        prefix = ".".join(("datasets", name, *path))
        source = SOURCES.get(part["source"])
        options = dict(part.get("options") or {})
        for option, problem, origin in source_problems(source, options):
            message = f"{prefix}.options.{option} {problem}."
            messages.append(f"{message} It must be {origin}." if origin else message)
    return "\n".join(messages) if messages else None


def input_files(block: Mapping[str, Any]) -> list[str]:
    """The files (not folders) a dataset block's sources read whose content decides the prepared
    data: their ``file`` path needs that are set (CelebA's identity file) and what they declare
    besides (the CelebA name list ``exclude_list``, the shipped one when absent). Folders are
    not listed: Snakemake cannot track their content."""
    files: list[str] = []
    for _, part in source_parts(block):
        source = SOURCES.get(part["source"])
        options = dict(part.get("options") or {})
        for need in getattr(source, "path_needs", ()):
            value = options.get(need.option)
            if need.kind == "file" and value is not None and str(value).strip():
                files.append(str(value))
        extra = getattr(source, "extra_files", None)
        if extra is not None:
            files.extend(extra(options))
    return list(dict.fromkeys(files))
