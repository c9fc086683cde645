"""Invariants, conservation laws and symbolic derivations of the linear BYOL/SimSiam theory."""
from linsim.theory.invariants import (
    alignment,
    asymmetry,
    balance_residual_matrix,
    balance_residual_modes,
    commutator_norm,
    matrix_modes,
)

__all__ = [
    "alignment",
    "asymmetry",
    "balance_residual_matrix",
    "balance_residual_modes",
    "commutator_norm",
    "matrix_modes",
]
