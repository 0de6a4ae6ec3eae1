"""The commands and what they run on: `config` (one checked dataclass a command; `coerce` turns text into its
typed values), `compare`, `tune`, `scale`; `runner` (one episode, the grid), `backends` (local processes or
Ray)."""
