"""BenchMARL's command line with the pev tasks: ``python -m experiments.learning.benchmarl_run algorithm=mappo task=pev/seed``
(hydra overrides as for ``benchmarl/run.py``: ``experiment.max_n_frames=...``, ``task.scenario=seed-20``, ``-m``)."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from benchmarl.hydra_config import load_experiment_from_hydra

from experiments.learning.benchmarl_task import register


@hydra.main(version_base=None, config_path="benchmarl_conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Build the experiment from the composed config and run it."""
    load_experiment_from_hydra(cfg, task_name=HydraConfig.get().runtime.choices.task).run()


if __name__ == "__main__":
    register()
    main()
