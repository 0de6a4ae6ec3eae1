"""Rendering: RGB frames of the plant and GIF output."""

from __future__ import annotations

from types import SimpleNamespace

import imageio.v3 as iio
import matplotlib.pyplot as plt
import numpy as np
import pytest

from pev_env.render import episode_frames, render_frame, write_gif
from pev_env.scenarios import make_scenario
from pev_env.schedule import plug_schedule

core_mod = pytest.importorskip("pev_env.core")


@pytest.fixture
def core():
    config, scenario = make_scenario("seed", 0)
    return core_mod.ChargingCore(config, scenario)


def _is_image(frame: np.ndarray) -> bool:
    return frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8 and frame.shape[0] > 100


def test_render_frame_shape_through_an_episode(core):
    figures_before = plt.get_fignums()
    first = render_frame(core)
    for _ in range(20):
        core.step(np.full(core.config.n_stations, 10.0))
    middle = render_frame(core)
    while not core.done:
        core.step(np.full(core.config.n_stations, 30.0))  # out of bounds: clipped by the plant
    last = render_frame(core)
    assert all(_is_image(f) for f in (first, middle, last))
    assert first.shape == middle.shape == last.shape
    assert (middle < 250).any() and not np.array_equal(first, middle)  # something drawn, and it changes
    assert plt.get_fignums() == figures_before  # no pyplot state touched


def test_render_frame_from_contract_fields_with_dict_history():
    """Any object with the ChargingCore contract fields renders (history as a plain dict)."""
    config, scenario = make_scenario("seed-20", 2)
    schedule = plug_schedule(scenario)
    t = 50
    fake = SimpleNamespace(
        t=t, config=config, scenario=scenario, schedule=schedule,
        soc=np.asarray(scenario.soc_init), station_pev=schedule.station_pev[t],
        history={
            "applied_kw": np.full((t, config.n_stations), 5.0),
            "area_power_kw": np.full(t, 25.0),
            "soc": np.tile(scenario.soc_init, (t + 1, 1)),
        },
    )
    assert _is_image(render_frame(fake))


def test_render_many_stations_is_capped():
    config, scenario = make_scenario("synthetic-50", 0)
    core = core_mod.ChargingCore(config, scenario)
    core.step(np.full(config.n_stations, 1.0))
    assert _is_image(render_frame(core))


def test_write_gif_from_episode_frames(core, tmp_path):
    path = tmp_path / "out" / "episode.gif"
    frames = episode_frames(core, lambda obs: np.full(obs.shape[0], 8.0), every=16)
    assert write_gif(frames, path, fps=5) == str(path)
    gif = iio.imread(path)
    assert gif.shape[0] == 4 and gif.shape[-1] == 3  # steps 0, 16, 32, 48
    assert [p.name for p in path.parent.iterdir()] == ["episode.gif"]  # atomic: no temp file left
    assert core.done


def test_write_gif_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="frames is empty"):
        write_gif([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match=r"need \(H, W, 3\) uint8"):
        write_gif([np.zeros((4, 4, 3), dtype=float)], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="fps = 0"):
        write_gif([np.zeros((4, 4, 3), dtype=np.uint8)], tmp_path / "a.gif", fps=0)
    assert not list(tmp_path.iterdir())
