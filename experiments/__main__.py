"""`python -m experiments ...` is the same as the `pev-experiments` console script."""

from experiments.cli import main

raise SystemExit(main())
