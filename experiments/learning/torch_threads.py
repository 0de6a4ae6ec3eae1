"""torch on one thread, for the driver, the worker processes and training alike."""

from __future__ import annotations


def single_thread_torch() -> None:
    """Run torch on one thread when it is installed (the rl extra is optional): the networks are small, so
    threads cost more than they give on a shared CPU, and sums stay in one order."""
    try:
        import torch
    except ImportError:  # pragma: no cover - the rl extra is optional
        return
    torch.set_num_threads(1)
