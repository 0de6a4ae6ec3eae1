"""Training learned controllers and judging them: `rl` (IPPO), `marl` (MAPPO), `benchmarl_task` and
`benchmarl_run` (BenchMARL, configs in `benchmarl_conf/`), `rlstats`, `rl_report`, `learning_curves`;
`torch_threads` (torch on one thread)."""
