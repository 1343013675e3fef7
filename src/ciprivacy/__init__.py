"""Model inversion attacks and defenses in collaborative inference.

The science of the SiftFunnel reproduction: data preparation, split models, defenses,
attacks, metrics and reporting. The Snakemake workflow only calls into this package.
"""

__version__ = "0.1.0"
