"""The commands and what they run on: `compare`, `tune`, `scale`; `runner` (one episode, the grid),
`backends` (local process pool or Ray), `registry` (controller and scenario names, controller construction),
`policies_plugin` (the user's own policy classes)."""
