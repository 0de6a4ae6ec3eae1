"""What can run as a controller: `registry` (controller and scenario names, construction of a controller),
`rl_model` (saved learned models: the files, loading, the shipped reference models in `models/`),
`policies_plugin` (the user's own policy classes)."""
