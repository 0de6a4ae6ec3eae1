"""Checks before any work starts that need more than the configuration itself: every scenario built once
(with the first seed) on the base plant, with its site network (which needs the scenario's stations), the
MPC controllers with the run's settings, the learned models (readable, safe) and the extras the command needs
(torch and Stable-Baselines3 for training), and Ray (installed, the cluster reachable).

Each failure raises ValueError, ImportError or ConnectionError with one line naming the problem; the command
line turns them into exit code 2.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.commands.config import MAX_EPISODE_STEPS
from experiments.controllers import registry
from pev_env.config import EnvConfig
from pev_env.scenario import Scenario

log = logging.getLogger("experiments")

Episode = tuple[str, EnvConfig, Scenario]
"""A scenario's name, and its plant and sessions as built with the run's first seed."""


def check_scenarios(section: str, scenarios: tuple[str, ...], seed: int, env: EnvConfig) -> list[Episode]:
    """Build every scenario with `seed` on `env`, and its site network (`pev_env.network.site_network`: the
    network file read, each station of the data placed on the network); its ValueError (e.g. a sampling time
    that does not divide the day, a station the network lacks) or an episode longer than MAX_EPISODE_STEPS
    names the scenario. Returns (name, config, scenario) of each, for the checks that start an episode."""
    from pev_env.network import site_network
    from pev_env.scenarios import make_scenario

    built: list[Episode] = []
    for name in scenarios:
        try:
            config, scenario = make_scenario(name, seed, base=env)
            site_network(config, scenario.station_ids)
        except ValueError as exc:
            raise ValueError(f"{section}.scenarios: {name}: {exc}") from None
        if config.n_steps > MAX_EPISODE_STEPS:
            raise ValueError(f"{section}.scenarios: {name}: {config.n_steps} control steps per episode; must be <= "
                             f"{MAX_EPISODE_STEPS}")
        built.append((name, config, scenario))
    check_site_fields(section, env, built)
    check_overridden_fields(section, env, built)
    check_generation_fields(section, env, built)
    return built


def check_generation_fields(section: str, env: EnvConfig, built: Sequence[Episode]) -> None:
    """A field the user set that only scenario generation reads (`pev_env.scenarios.base.GENERATION_FIELDS`, e.g.
    area_limit_fraction, charge_time_desired) is refused when no scenario of the run reads it (it would change the
    rows' plant fingerprint and nothing else), and named in a warning for those that do not in a mixed run."""
    from pev_env.scenarios.base import GENERATION_FIELDS
    from pev_env.scenarios.registry import generation_fields_read

    for field in (f for f in GENERATION_FIELDS if env.is_set(f)):
        unused = [name for name, config, _ in built if field not in generation_fields_read(name, config)]
        if not unused:
            continue
        key = (f"{section}.env.{field} = {getattr(env, field)!r}: not read by {', '.join(unused)} "
               f"({_GENERATION_READERS[field]})")
        if len(unused) == len(built):
            raise ValueError(key)
        log.warning("%s", key)


_GENERATION_READERS: dict[str, str] = {
    "area_limit_fraction": "read where P_ref is computed: synthetic-N, acn-caltech*, acn:, csv: with P_ref not set and "
                           "not on a site network",
    "acn_battery_kwh": "read by ACN data only: acn-caltech*, acn:",
    **{name: "read by the seed generator only: seed, seed-20, seed-30" for name in
       ("charge_time_desired", "initial_charge_max", "charge_duration_tolerance", "random_start_coeff")},
}
"""Which scenarios read each scenario-generation field (the error's 'what is allowed')."""


def check_overridden_fields(section: str, env: EnvConfig, built: Sequence[Episode]) -> None:
    """A plant field the user set that a scenario sets itself (e.g. total_time and n_stations of a real day) is
    refused when every scenario of the run does (it would change the rows' settings and nothing else), and named
    in a warning for those that do in a mixed run."""
    for field in sorted(env.user_set):
        value = getattr(env, field)
        replaced = {name: getattr(config, field) for name, config, _ in built if getattr(config, field) != value}
        if not replaced:
            continue
        key = f"{section}.env.{field} = {value!r}: not used by " + ", ".join(
            f"{name} (it sets {field} = {v!r:.40} itself)" for name, v in replaced.items())
        if len(replaced) == len(built):
            raise ValueError(key)
        log.warning("%s", key)


def check_site_fields(section: str, env: EnvConfig, built: Sequence[Episode]) -> None:
    """A plant field that only one built-in network reads (`pev_env.network.SITE_FIELDS`, e.g. transformer_kw:
    caltech) set by the user is refused when no scenario of the run is on that network (it would change the
    rows' settings and nothing else), and named in a warning for the scenarios that do not read it."""
    from pev_env.network import SITE_FIELDS

    for field, network in SITE_FIELDS.items():
        if not env.is_set(field):
            continue
        unused = {name: config.network for name, config, _ in built if config.network != network}
        key = f"{section}.env.{field} = {getattr(env, field)!r}: applies to network {network!r} only"
        if len(unused) == len(built):
            raise ValueError(f"{key}; the run's scenarios are on {', '.join(sorted(set(unused.values())))}")
        if unused:
            log.warning("%s; not used by %s", key, ", ".join(f"{name} ({net})" for name, net in unused.items()))


def check_mpc_settings(section: str, controller: str, mpc: Any, episodes: Sequence[Episode] = (),
                       seed: int = 0) -> None:
    """An MPC controller accepts the run's MPCSettings `mpc` and starts an episode of each scenario (`episodes`:
    what `check_scenarios` built, reset with `seed`): `mpc-foresight` refuses an objective other than
    'deadline', `mpc-history` a history that is not of the scenario's site."""
    if mpc is None or controller not in registry.mpc_controllers():
        return
    where = f"{section}.controllers: {controller}"
    try:
        policy = registry.make_controller(controller, mpc=mpc)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    for name, config, scenario in episodes:
        try:
            policy.reset(config, scenario, seed)
        except ValueError as exc:
            raise ValueError(f"{where}: on {name}: {exc}") from None


def _unread(controllers: Sequence[str], key: str, episodes: Sequence[Episode],
            settings: Sequence[Any]) -> tuple[list[str], list[str]]:
    """The `controllers` that never read the MPC setting `key` on the scenarios of `episodes` with any of
    `settings` (`ignores_setting`, on a site network also what its coordination does not read; what the policy
    does not read with the settings, `unread_policy_settings`, and the decentralised MPCs' stations and
    coordination, `_unread_decentralised`), and 'controller on scenarios' for those that do not read it on some
    of the scenarios."""
    from pev_mpc.policies import POLICIES
    from pev_mpc.policies.mpc import DecentralisedMPC, unread_policy_settings

    on_network = {name: config.network != "area" for name, config, _ in episodes}
    places = set(on_network.values()) or {False}
    ignoring, partly = [], []
    for c in controllers:
        def reads(network: bool) -> bool:
            runs = (registry.make_controller(c, mpc=s) for s in settings)  # as the policy runs them
            return not POLICIES[c].ignores_setting(key, network) and any(  # noqa: B023 (used at once)
                key not in (*unread_policy_settings(r.settings),
                            *(_unread_decentralised(r.settings, network) if isinstance(r, DecentralisedMPC) else ()))
                for r in runs)

        unread = {network for network in places if not reads(network)}
        if unread == places:
            ignoring.append(c)
        elif unread:
            names = [name for name, network in on_network.items() if network in unread]
            partly.append(f"{c} on {', '.join(names)} ({'a site network' if True in unread else 'the area limit'}: "
                          "its coordination there does not read it)")
    return ignoring, partly


def _unread_decentralised(settings: Any, network: bool) -> tuple[str, ...]:
    """The settings the decentralised MPC's stations and coordination never read with `settings` (on a site
    network when `network`): `unread_station_settings`, `unread_centralised_settings` and, under the area limit,
    `unread_coordination_settings`."""
    from pev_mpc.decentralised import unread_centralised_settings, unread_coordination_settings, unread_station_settings

    return (*unread_station_settings(settings, network), *unread_centralised_settings(settings, network),
            *(() if network else unread_coordination_settings(settings)))


def check_unused_mpc_settings(section: str, controllers: Sequence[str], mpc: Any,
                              episodes: Sequence[Episode] = ()) -> None:
    """An MPCSettings field the user set (`Section.given`) that no controller of the run reads is refused (it
    would change the rows' settings and nothing else: e.g. `policy.foresight` without mpc-foresight, any
    `mpc.*` with heuristics only, `coordination.method` of the decentralised MPC when every scenario of
    `episodes` is on a site network); in a mixed run a warning names the MPC controllers that ignore it
    (`ignores_setting` of each MPC policy, e.g. mpc-centralised ignores `coordination.*`). Not checked with
    --resume: the settings must then match the folder's rows, whichever controllers this run adds."""
    from pev_mpc.settings import SECTIONS

    readers = [c for c in controllers if c in registry.mpc_controllers()]
    plugins = [c for c in controllers if registry.is_plugin(c)]
    given = {f"{part}.{field}": getattr(getattr(mpc, part), field)
             for part in SECTIONS for field in sorted(getattr(mpc, part).given)}
    if plugins and given:
        log.warning("%s.mpc (%s): not passed to the plug-ins %s (a plug-in is built without arguments: give it its "
                    "MPCSettings in its __init__)", section, ", ".join(given), ", ".join(plugins))
    for key, value in given.items():
        ignoring, partly = _unread(readers, key, episodes, [mpc])
        where = f"{section}.mpc.{key} = {value!r}"
        if not readers:
            raise ValueError(f"{where}: no controller of the run reads MPC settings ({', '.join(controllers)}; "
                             "a plug-in never receives them)")
        if len(ignoring) == len(readers):
            raise ValueError(f"{where}: not read by {', '.join(ignoring)}, the run's MPC controllers"
                             f"{_network_note(key, episodes)}{_solver_note(key)}{_area_note(key, episodes)}"
                             f"{_centralised_note(key)}")
        if ignoring or partly:
            log.warning("%s: not read by %s", where, "; ".join([*ignoring, *partly]))


def _network_note(key: str, episodes: Sequence[Episode]) -> str:
    """Why a coordination setting is not read when every scenario is on a site network ('' otherwise)."""
    from pev_mpc.network_coordinator import READS

    if not key.startswith("coordination.") or not episodes or any(c.network == "area" for _, c, _ in episodes):
        return ""
    return (f", on the run's site networks ({', '.join(sorted({c.network for _, c, _ in episodes}))}: model-market "
            f"exchanges read only {', '.join(READS)})")


_AREA_NOTES: dict[str, str] = {
    "smoothed-newton": " ('smoothed-newton' smooths with the station solvers active_set and batch only, and is "
                       "Newton alone, without the model market, with the others; station_solver 'auto' is the "
                       "closed-form 'separable' with the deadline objective)",
    "model": " (the model market needs stations whose replies carry bids or report their QPs, not 'osqp'; "
             "model_rounds needs model_after)",
    "gap_tol": " ('gradient' and 'nesterov' stop on the price step, price_tol, not on the dual gap)",
}
"""Why the area coordinator does not read a coordination setting (`unread_coordination_settings`)."""


def _area_note(key: str, episodes: Sequence[Episode]) -> str:
    """Why the area coordinator does not read the coordination setting `key` ('' for another key, or when every
    scenario is on a site network: `_network_note`)."""
    name = key.partition(".")[2]
    if not key.startswith("coordination.") or episodes and all(c.network != "area" for _, c, _ in episodes):
        return ""
    if name == "method" or name == "smoothing_after" or name.startswith("barrier_"):
        return _AREA_NOTES["smoothed-newton"]
    return _AREA_NOTES.get("model" if name.startswith("model_") else name, "")


def _solver_note(key: str) -> str:
    """Which station solvers read a `stations` setting ('' for another key)."""
    from pev_mpc.decentralised import SOLVER_READS

    name = key.partition(".")[2]
    if not key.startswith("stations.") or name == "station_solver":
        return ""
    readers = [solver for solver, reads in SOLVER_READS.items() if name in reads]
    market = "" if "batch" in readers else (", and with 'batch' under the area limit by the reported market of "
                                            "'newton' with model_after, which models the stations by 'active_set'")
    return (f" (read by the station solvers {', '.join(readers)} only{market}; station_solver 'auto' is the "
            "closed-form 'separable' with the deadline objective)")


def _centralised_note(key: str) -> str:
    """When the decentralised MPC reads a `centralised` setting ('' for another key)."""
    if not key.startswith("centralised."):
        return ""
    return (" (the decentralised MPC reads it where it solves the centralised QP of the stations' reported QPs: "
            "station solvers 'batch' and 'active_set' under the area limit with 'newton' and model_after, and every "
            "station solver but 'separable' on a site network)")


def check_unused_grid(section: str, grid: Any, episodes: Sequence[Episode]) -> None:
    """A tune grid field that the decentralised MPC does not read on the run's scenarios (e.g.
    `coordination.method` when every scenario is on a site network) or with any of the grid's settings (e.g.
    `stations.station_tol` of the closed-form station solver) is refused: its settings would give the same
    rows under different labels; on some of the scenarios only, a warning names them. The refusal of a field of
    the default grid (`DEFAULT_GRID`, no --grid given) says so."""
    from experiments.commands.config import DEFAULT_GRID, settings_grid, typed_grid

    combinations = settings_grid(grid)
    default = (f"; it is in tune's default grid, which is for the area limit: give --grid with the fields read "
               "here" if dict(grid) == typed_grid(DEFAULT_GRID) else "")
    for key, values in grid.items():
        ignoring, partly = _unread(["mpc-decentralised"], key, episodes, combinations)
        where = f"{section}.grid.{key} = {list(values)!r}"
        if ignoring:
            raise ValueError(f"{where}: not read by mpc-decentralised, the controller tune sweeps"
                             f"{_network_note(key, episodes)}{_solver_note(key)}{_area_note(key, episodes)}"
                             f"{_centralised_note(key)}{default}")
        if partly:
            log.warning("%s: not read by %s", where, "; ".join(partly))


def check_model(section: str, controller: str, path: str, trust: bool) -> None:
    """The model of a learned controller loads safely (`experiments.controllers.rl_model.load_model`; '' is the shipped
    reference model); a pickled Stable-Baselines3 zip passes only with `trust` and the rl extra (compare
    converts it)."""
    from experiments.controllers.rl_model import is_pickled, load_model, reference_model

    base = registry.learned_base(controller) or controller  # ppo@1: a training seed of ppo
    model = path or reference_model(base)
    if trust and is_pickled(Path(model)):
        check_training_extra(f"{section}.trust_model")
        return
    key = f"{section}.{controller}_model"
    found = load_model(model, key).description.get("controller")
    if found != base:
        raise ValueError(f"{key} = {str(model)!r}: a model of controller {found!r}; allowed: a model of "
                         f"{base!r} (its model.json `controller`)")


TRAINING_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "ippo": (("torch", "stable_baselines3"), "rl"),
    "mappo": (("torch", "stable_baselines3", "torchrl", "tensordict"), "rl,marl"),
}
TRAINING_NEEDS["mappo-lagrangian"] = TRAINING_NEEDS["mappo"]
"""Modules each training algorithm needs, and the extras that install them."""


def check_training_extra(key: str, algo: str = "ippo") -> None:
    """ImportError with the install hint unless the modules of training `algo` are installed."""
    modules, extras = TRAINING_NEEDS[algo]
    missing = [m for m in modules if not registry.installed(m)]
    if missing:
        raise ImportError(f"{key}: needs {', '.join(missing)}, not installed; install with: "
                          f"pip install 'pev-mpc[{extras}]'")


def check_ray(address: str) -> None:
    """Ray installed (ImportError with the install command) and, for a cluster address, reachable."""
    from experiments.commands.backends import check_ray_reachable
    from pev_mpc.distributed import import_ray

    import_ray()
    check_ray_reachable(address)


def preflight(cfg: Any) -> None:
    """Every check of this module that applies to the configuration `cfg`."""
    seeds = getattr(cfg, "seeds", (0,))
    env = getattr(cfg, "env", EnvConfig())
    # scale builds synthetic-N of each size
    scenarios = tuple(f"synthetic-{n}" for n in cfg.sizes) if cfg.section == "scale" else cfg.scenarios
    episodes = check_scenarios(cfg.section, scenarios, seeds[0], env)
    for name in getattr(cfg, "controllers", ()):
        registry.check_available(name, f"{cfg.section}.controllers")
        check_mpc_settings(cfg.section, name, getattr(cfg, "mpc", None), episodes, seeds[0])
    if getattr(cfg, "mpc", None) is not None and not getattr(cfg, "resume", False):  # a resume's kept rows need them
        check_unused_mpc_settings(cfg.section, cfg.controllers, cfg.mpc, episodes)
    if cfg.section == "tune":
        check_unused_grid(cfg.section, cfg.grid, episodes)
    for name, path in (cfg.model_paths().items() if hasattr(cfg, "model_paths") else ()):
        if name in cfg.controllers:
            check_model(cfg.section, name, path, cfg.trust_model)
    if cfg.section == "train":
        check_training_extra(f"train.algo = {cfg.algo!r}", cfg.algo)
    if getattr(cfg, "backend", "local") == "ray":
        check_ray(cfg.ray_address)
