"""The paper's table layout in one place: which defenses the paper compares and in what order,
how rows group by family, which paper table a (dataset, arch) maps to, and which direction is
better for each measure. A defense's family, label and whether the gray-box attacker mirrors
its added layers live on its class (``ciprivacy.defenses``); these functions read them there,
so a defense added as one file (or a plug-in package) gets its row in the right group."""

from __future__ import annotations

from collections.abc import Iterable

from ciprivacy.defenses import DEFENSES, PLUGINS, split_plugins

# The paper's defenses, in its Tables 2-4's row order (a fact of the paper, not a registry).
PAPER_DEFENSES = (
    "unprotected",
    "noise",
    "dropping",
    "dpsgd",
    "nls",
    "mid",
    "bido",
    "vib",
    "infoscissors",
    "ae",
    "siftfunnel",
)
# The paper's family order; other families follow in the order their defenses were registered.
FAMILY_ORDER = ("", "perturbation", "information bottleneck", "network design & IB")
GEN_SCENARIOS = ("blackbox", "graybox")

# (dataset, arch) -> the paper table with all defenses; Table 5 is SiftFunnel across archs.
PAPER_TABLES = {("cifar10", "cnn"): 2, ("cifar10", "resnet18"): 3, ("facescrub", "cnn"): 4}
ARCH_TABLE = 5
PAPER_ARCHS = ["cnn", "resnet18", "vgg16"]

# Measures shown, their direction (True: higher is better) and display format.
METRICS = ["test_acc_pct", "mse", "psnr", "ssim", "mi", "delta_z", "edge_params"]
HIGHER_IS_BETTER = {
    "test_acc_pct": True,
    "mse": True,
    "psnr": False,
    "ssim": False,
    "mi": False,
    "delta_z": False,
    "edge_params": False,
}


def _entry(name: str):
    base = split_plugins(name)[0]
    return DEFENSES.get(base) if base in DEFENSES else None


def family(name: str) -> str:
    """The family a defense's rows are grouped under ('' for the unprotected model and names no
    registry knows, such as a config variant)."""
    entry = _entry(name)
    return entry.family if entry is not None else ""


def label(name: str) -> str:
    """A defense's row label: its class's ``label``, with each plug-in's label appended."""
    entry = _entry(name)
    text = (entry.label or name) if entry is not None else name
    for plugin in split_plugins(name)[1]:
        text += f" + {PLUGINS.get(plugin).__name__ if plugin in PLUGINS else plugin}"
    return text


def mirrors_added_layers(name: str) -> bool:
    """Whether the defense adds layers to the edge, which the gray-box attacker mirrors: its
    tables show the gray-box Gen row with the black-box one below it, as the paper does."""
    entry = _entry(name)
    return entry is not None and entry.extra_edge_layers > 0


def _family_rank(name: str) -> int:
    fam = family(name)
    if fam in FAMILY_ORDER:
        return FAMILY_ORDER.index(fam)
    order = list(dict.fromkeys(cls.family for _, cls in DEFENSES.items() if cls.family not in FAMILY_ORDER))
    return len(FAMILY_ORDER) + (order.index(fam) if fam in order else len(order))


def row_order(names: Iterable[str]) -> list[str]:
    """Rows grouped by family in the paper's order; within a family the paper's defenses first,
    in its order, then the others by name."""
    names = list(dict.fromkeys(names))

    def key(name: str) -> tuple:
        paper = PAPER_DEFENSES.index(name) if name in PAPER_DEFENSES else len(PAPER_DEFENSES)
        return (_family_rank(name), paper, name)

    return sorted(names, key=key)


def defense_table_name(dataset: str, arch: str) -> str:
    """`table<N>_<dataset>_<arch>`: N is the paper's table for this pair, else 2 (its layout)."""
    return f"table{PAPER_TABLES.get((dataset, arch), 2)}_{dataset}_{arch}"


def arch_table_name(dataset: str) -> str:
    return f"table{ARCH_TABLE}_{dataset}"


def paper_table_for(dataset: str, arch: str) -> str | None:
    number = PAPER_TABLES.get((dataset, arch))
    return f"table{number}" if number else None
