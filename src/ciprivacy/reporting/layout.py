"""The paper's table layout in one place: defense families, row order, labels, which paper
table a (dataset, arch) maps to, and which direction is better for each measure."""

from __future__ import annotations

FAMILIES: dict[str, list[str]] = {
    "": ["unprotected"],
    "perturbation": ["noise", "dropping", "dpsgd", "nls"],
    "information bottleneck": ["mid", "bido", "vib", "infoscissors"],
    "network design & IB": ["ae", "siftfunnel"],
}
DEFENSES = [d for members in FAMILIES.values() for d in members]
FAMILY_OF = {d: f for f, members in FAMILIES.items() for d in members}
LABELS = {
    "unprotected": "Unprotected",
    "noise": "Noise",
    "dropping": "Dropping",
    "dpsgd": "DP-SGD",
    "nls": "NLS",
    "mid": "MID",
    "bido": "BiDO",
    "vib": "VIB",
    "infoscissors": "InfoSCISSORS",
    "ae": "AE-based",
    "siftfunnel": "SiftFunnel",
}
# The paper reports the deepened-edge defenses under the gray-box generator and, below, black-box.
GRAY_AND_BLACK = {"ae", "siftfunnel"}
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


def defense_table_name(dataset: str, arch: str) -> str:
    """`table<N>_<dataset>_<arch>`: N is the paper's table for this pair, else 2 (its layout)."""
    return f"table{PAPER_TABLES.get((dataset, arch), 2)}_{dataset}_{arch}"


def arch_table_name(dataset: str) -> str:
    return f"table{ARCH_TABLE}_{dataset}"


def paper_table_for(dataset: str, arch: str) -> str | None:
    number = PAPER_TABLES.get((dataset, arch))
    return f"table{number}" if number else None
