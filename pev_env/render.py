"""Rendering of the plant: one RGB frame per step (the seed's five panels) and GIF output.

Matplotlib's object API with the Agg canvas is used directly (no pyplot, no global state);
each frame builds and drops its own `Figure`. Panels (top to bottom): station power bars
with p_max; Gantt of sessions (station vs time, current step marked); SOC of the PEV
plugged at each station with its target; area power vs P_ref over time; SOC trajectories.
At most `MAX_STATIONS_DRAWN` stations (and their PEVs) are drawn.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pev_env.observation import OBS_INDEX
from pev_env.files import atomic_path

MAX_STATIONS_DRAWN = 32
MAX_LABELLED_SESSIONS = 40
FIGSIZE_IN = (7.0, 9.0)
DPI = 64


def _history(core: Any, key: str) -> np.ndarray:
    """core.history[key] or core.history.key as an array."""
    hist = core.history
    return np.asarray(hist[key] if isinstance(hist, Mapping) else getattr(hist, key), dtype=float)


def render_frame(core: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of the plant state of `core` (a ChargingCore) at step core.t."""
    cfg, scenario, schedule = core.config, core.scenario, core.schedule
    t = int(core.t)
    n = min(scenario.n_stations, MAX_STATIONS_DRAWN)
    stations = np.arange(n)
    applied = _history(core, "applied_kw")[:t]
    area = _history(core, "area_power_kw")[:t]
    soc_hist = _history(core, "soc")[: t + 1]
    occupant = np.asarray(core.station_pev)[:n]
    soc = np.asarray(core.soc, dtype=float)

    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    ax_p, ax_g, ax_s, ax_a, ax_t = fig.subplots(5, 1, gridspec_kw={"hspace": 0.45})
    fig.subplots_adjust(left=0.08, right=0.98, top=0.94, bottom=0.06)
    fig.suptitle(f"{scenario.name}: step {t}/{scenario.n_steps}", fontsize=10)

    # 1. station power of the last applied step, with p_max
    last = applied[-1, :n] if len(applied) else np.zeros(n)
    ax_p.bar(stations, last, width=0.6, color="tab:blue")
    p_max = cfg.station_p_max[:n]
    ax_p.step(np.append(stations, stations[-1] + 1) - 0.5, np.append(p_max, p_max[-1]), where="post",
              color="tab:red", lw=1, ls="--", label="p_max")
    ax_p.set_ylim(0, p_max.max() * 1.15)
    _title(ax_p, "station power kW (dashed: p_max)")
    _station_ticks(ax_p, [f"CS{i}\n" + (f"EV{j}" if j >= 0 else "-") for i, j in enumerate(occupant)])

    # 2. Gantt: plugged sessions per station, current step marked
    pevs = np.flatnonzero((schedule.station >= 0) & (schedule.station < n))
    ax_g.barh(schedule.station[pevs], schedule.unplug_step[pevs] - schedule.plug_step[pevs],
              left=schedule.plug_step[pevs], height=0.6, color=_colours(pevs), edgecolor="k", lw=0.3)
    if pevs.size <= MAX_LABELLED_SESSIONS:
        for j in pevs:
            ax_g.text(schedule.plug_step[j] + 0.3, schedule.station[j], f"EV{j}", va="center", fontsize=6)
    ax_g.axvline(t, color="goldenrod", lw=1.5)
    ax_g.set_xlim(0, scenario.n_steps)
    ax_g.set_ylim(-0.7, n - 0.3)
    _title(ax_g, "sessions per station (line: now)")

    # 3. SOC of the plugged PEVs with their targets
    plugged = occupant >= 0
    pev_at = np.where(plugged, occupant, 0)
    ax_s.bar(stations, np.where(plugged, soc[pev_at], 0.0), width=0.6, color="tab:green")
    ax_s.scatter(stations[plugged], scenario.soc_target[pev_at[plugged]], marker="_", s=200, color="tab:red",
                 zorder=3)
    ax_s.set_ylim(0, float(scenario.capacity.max(initial=cfg.soc_max)) * 1.1)
    _station_ticks(ax_s, [f"CS{i}" for i in stations])
    _title(ax_s, "SOC kWh of the plugged PEV (red: target)")

    # 4. area power against P_ref
    ax_a.axhline(cfg.P_ref, color="tab:red", lw=1, ls="--")
    ax_a.stairs(area, np.arange(len(area) + 1), color="tab:blue", baseline=None)
    ax_a.set_xlim(0, scenario.n_steps)
    ax_a.set_ylim(0, max(cfg.P_ref, float(area.max(initial=0.0))) * 1.2)
    _title(ax_a, "area power kW (dashed: P_ref)")

    # 5. SOC trajectories while plugged (up to now)
    seen = pevs[schedule.plug_step[pevs] <= t]
    steps = np.arange(len(soc_hist))[:, None]
    inside = (steps >= schedule.plug_step[seen]) & (steps <= np.minimum(schedule.unplug_step[seen], t))
    if seen.size:
        lines = ax_t.plot(steps[:, 0], np.where(inside, soc_hist[:, seen], np.nan), lw=1)
        for line, colour in zip(lines, _colours(seen), strict=True):
            line.set_color(colour)
    ax_t.set_xlim(0, scenario.n_steps)
    ax_t.set_ylim(0, float(scenario.capacity.max(initial=cfg.soc_max)) * 1.1)
    ax_t.set_xlabel("step", fontsize=8)
    _title(ax_t, "SOC kWh while plugged")

    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def render_text(core: Any) -> str:
    """Text of the plant state at step core.t: area power against P_ref, then one line per station."""
    cfg, t = core.config, int(core.t)
    area = float(_history(core, "area_power_kw")[t - 1]) if t > 0 else 0.0
    lines = [f"step {t}/{cfg.n_steps}: area {area:.1f} kW (P_ref {cfg.P_ref:.1f} kW)"]
    obs = core.observations
    for i, pev in enumerate(core.station_pev[:MAX_STATIONS_DRAWN]):
        remain, to_go = obs[i, OBS_INDEX["soc_remain"]], obs[i, OBS_INDEX["steps_to_departure"]]
        state = f"PEV {pev}, {remain:.1f} kWh to go, {to_go:.0f} steps left" if pev >= 0 else "free"
        lines.append(f"  cs_{i}: {obs[i, OBS_INDEX['action_last']]:.1f} kW last step; {state}")
    return "\n".join(lines)


def _title(ax: Any, text: str) -> None:
    """Small left title (cheaper than a legend) and few y ticks."""
    ax.set_title(text, fontsize=8, loc="left")
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.tick_params(labelsize=7)


def _station_ticks(ax: Any, labels: list[str]) -> None:
    """Label every station when few; otherwise about 12 ticks with the station index only."""
    if len(labels) <= 12:
        ax.set_xticks(np.arange(len(labels)), labels, fontsize=6)
    else:
        ticks = np.arange(0, len(labels), -(-len(labels) // 12))
        ax.set_xticks(ticks, [str(i) for i in ticks], fontsize=7)


def _colours(pev_index: np.ndarray) -> np.ndarray:
    """One stable RGBA colour per PEV index (tab20 cycle)."""
    from matplotlib import colormaps

    return colormaps["tab20"](np.asarray(pev_index) % 20)


def episode_frames(core: Any, act: Callable[[np.ndarray], np.ndarray], every: int = 1) -> Iterator[np.ndarray]:
    """Reset `core`, run it with `act(observations) -> requested kW (N,)` and yield a frame every `every` steps."""
    obs = core.reset()
    yield render_frame(core)
    while not core.done:
        obs = core.step(act(obs)).observations
        if core.t % every == 0 or core.done:
            yield render_frame(core)


def write_gif(frames: Iterable[np.ndarray], path: str | os.PathLike[str], fps: float = 4.0) -> str:
    """Write RGB frames (e.g. from `episode_frames`) as a looping GIF, atomically; return the path."""
    import imageio.v3 as iio

    frames = list(frames)
    if not frames:
        raise ValueError("write_gif: frames is empty: need at least one (H, W, 3) uint8 frame")
    stack = np.stack(frames)
    if stack.ndim != 4 or stack.shape[-1] != 3 or stack.dtype != np.uint8:
        raise ValueError(f"write_gif: frames have shape {stack.shape} dtype {stack.dtype}: need (H, W, 3) uint8 each")
    if not fps > 0:
        raise ValueError(f"write_gif: fps = {fps!r}: must be > 0")
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, stack, extension=".gif", duration=1000.0 / fps, loop=0)
    return os.fspath(path)
