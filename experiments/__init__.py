"""Experiment harness: compare controllers, train/evaluate PPO, tune the decentralised MPC, scale.

Command line: `pev-experiments {compare,train,evaluate,tune,scale}` (see `experiments.cli.main`).
The runner (`experiments.commands.runner`) is the only place that wires the plant to controllers.
"""
