"""The config: checked once before any job (``check``), where each value came from
(``layers``), entries that vary others (``variants``), and the exact settings each kind of job
receives (``jobs``)."""

from ciprivacy.config.check import ConfigError, check_config, check_dict, effective_config, protocols_in_use
from ciprivacy.config.jobs import (
    attack_settings,
    canonical,
    dataset_input_files,
    dataset_settings,
    dataset_unavailable,
    evaluation_settings,
    mine_settings,
    runtime_settings,
    target_settings,
    with_runtime,
)
from ciprivacy.config.layers import deep_merge, merge_layers, workflow_layers
from ciprivacy.config.variants import (
    arch_block,
    defense_block,
    defense_train,
    recut_base,
    recut_pairs,
    reuses_unprotected_model,
)
from ciprivacy.runtime import local_gpu_plan, visible_gpus

__all__ = [
    "ConfigError",
    "arch_block",
    "attack_settings",
    "canonical",
    "check_config",
    "check_dict",
    "dataset_input_files",
    "dataset_settings",
    "dataset_unavailable",
    "deep_merge",
    "local_gpu_plan",
    "visible_gpus",
    "defense_block",
    "defense_train",
    "effective_config",
    "evaluation_settings",
    "merge_layers",
    "mine_settings",
    "protocols_in_use",
    "recut_base",
    "recut_pairs",
    "reuses_unprotected_model",
    "runtime_settings",
    "target_settings",
    "with_runtime",
    "workflow_layers",
]
