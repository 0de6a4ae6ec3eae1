"""The command line and its configuration: `main` (argparse, dispatch), `config` (one dataclass a command),
`coerce` (text to typed values), `loader` (config file + `--set`), `plan` (`--dry-run`), `preflight` (checks
before anything runs)."""
