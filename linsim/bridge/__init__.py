"""The bridge to real training: a BYOL/SimSiam trainer in JAX whose logs speak the linear theory's language.

Modules, one job each: ``data`` (dataset readers and the built-in offline set), ``augment`` (on-device
augmentation), ``models`` (ResNets, projector, predictors), ``train`` (step, loop, EMA, optimiser),
``evaluate`` (spectra, collapse metrics, probes), ``checkpoint`` (atomic save/resume), ``report``
(tables and plots of a run).
"""
