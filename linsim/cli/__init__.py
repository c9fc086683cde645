"""linsim command-line interface. Each command lives in its own module and registers on ``app``;
the import order below is the order of ``linsim --help``."""
from linsim.cli._app import app, main  # noqa: F401
from linsim.cli import simulate  # noqa: F401,E402  (`simulate` and `fixed-points`)
from linsim.cli import map  # noqa: F401,E402  (`map`: training config -> theory parameters)
from linsim.cli import sweep  # noqa: F401,E402
from linsim.cli import spectral  # noqa: F401,E402
from linsim.cli import metrics  # noqa: F401,E402
from linsim.cli import figures  # noqa: F401,E402
from linsim.cli import bridge  # noqa: F401,E402  (`bridge train`, `bridge show`)
from linsim.cli import compare  # noqa: F401,E402  (`bridge compare`)

__all__ = ["app", "main"]
