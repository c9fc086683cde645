"""Vector fields of the two-layer linear BYOL/SimSiam model: full matrices and per-eigenmode."""
from linsim.dynamics.matrix import matrix_field
from linsim.dynamics.modes import modes_field
from linsim.dynamics.variant import Variant

__all__ = ["matrix_field", "modes_field", "Variant"]
