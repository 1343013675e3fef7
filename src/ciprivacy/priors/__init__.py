"""Generative priors for GLASS (Li et al. 2023): GANs trained on the attacker's auxiliary split.

One registry, ``PRIORS`` (family name -> trainer): ``dcgan``, ``wgan_gp`` and ``stylegan2``.
Every prior offers the interface of ``Prior``: ``z_dim``, ``w_dim``, ``num_ws``,
``mapping(z)``, ``synthesis(ws)`` (images in [0, 1]), ``mean_w()`` and ``sample(n, gen)``.
"""

from ciprivacy.priors import dcgan, stylegan2  # noqa: F401  (register the families)
from ciprivacy.priors.base import PRIORS, GANTrainer, Prior, to_unit
from ciprivacy.priors.train import fit_prior, load_prior, prior_settings, train_prior

__all__ = ["GANTrainer", "PRIORS", "Prior", "fit_prior", "load_prior", "prior_settings", "to_unit", "train_prior"]
