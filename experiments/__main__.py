"""`python -m experiments ...` is the same as the `pev-experiments` console script.

`python -m` puts the working directory first on sys.path; it is moved to the end before anything else is
imported, so a folder of the user's named like a dependency (`pev_env/`, `pev_mpc/`, `numpy/`) never shadows
it, while a plug-in module beside the user (`--controllers mine:MyPolicy`) still loads. (A folder named
`experiments/` would be run instead of this package: use the `pev-experiments` command there.)
"""

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.append(sys.path.pop(0))

from experiments.cli.main import main  # noqa: E402 - after the sys.path fix

raise SystemExit(main())
