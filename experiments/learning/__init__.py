"""Learned controllers: training (`rl` IPPO, `marl` MAPPO, `benchmarl_task`/`benchmarl_run`), saved model
files (`rl_model`; the shipped reference models in `models/`), and their statistics and reports (`rlstats`,
`rl_report`, `learning_curves`)."""
