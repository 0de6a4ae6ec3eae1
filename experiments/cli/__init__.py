"""The command line: `main` (argparse, dispatch to the commands), `loader` (a config file and `--set` into a
command's configuration), `plan` (`--dry-run`), `preflight` (checks before anything runs)."""
