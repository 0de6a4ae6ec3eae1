"""`compare` (and `evaluate`): every controller on every scenario x seed, then summary, traces and plots.

Output directory layout:

```
metrics.csv          tidy: one row per controller x scenario x distinct episode (appended and fsync'ed as each run
                     finishes), with the solver-failure columns and, last, package_version, plant_fingerprint
                     and settings_fingerprint
settings.json        fingerprint -> what it hashes: the settings of rows (base env and the fields set in it, the
                     package version and code_sha256, scenario_files: the sha256 of every data file the rows read,
                     a network file's too, mpc for MPC controllers, the learned model's checksum) and the plants
                     that ran ({"plant": EnvConfig fields and the sha256 of a network file})
summary.md           mean ± 95% CI per controller and scenario, paired differences against the reference
                     controller, the RL statistics when a learned controller ran (`experiments.learning.rl_report`: IQM
                     with stratified-bootstrap CIs, probability of improvement), solver failures marked, the model (and checksum) behind the learned rows,
                     repeated episodes (also printed)
run.json             the configuration (base plant and MPC settings included), the plants that ran, the command
                     line, versions, wall time, failures, rows re-run because they were incomplete, and each
                     row's episode by name (`episodes`: scenario -> seed -> e.g. acn-caltech-2019-05-07, the day
                     a seed drew)
.written             every file written (what `overwrite` removes, `experiments.outputs.outdir.clear`)
traces/<scenario>_seed<seed>_<controller>.csv       per step: area power, P_ref, price, convergence, power
traces/<scenario>_seed<seed>_<controller>_soc.csv   per step boundary: SOC of every PEV
traces/<scenario>_seed<seed>_<controller>_network.csv    per step: load_<j> of each site-network constraint
traces/<scenario>_seed<seed>_<controller>_network.json   its constraints: column, name, unit, limit, stations
plots/area_power_<scenario>.png, plots/soc_<scenario>.png, plots/violations_unmet.png,
plots/performance_profiles.png (when a learned controller ran)
```

The folder is locked while the run lasts (`experiments.outputs.outdir`). With `resume`, only complete rows whose
fingerprint matches the current settings are kept; other settings stop the run (UsageError naming the
differing keys). With `overwrite`, the earlier run's files (and no others) are removed when the first new row
is written. A run in which no episode finishes leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from experiments.outputs import plots

from experiments.controllers import policies_plugin, registry

from experiments.commands.backends import open_backend
from experiments.commands.config import CompareConfig
from experiments.errors import UsageError
from experiments.learning import rl_report
from experiments.outputs.outdir import claim, clear
from experiments.outputs.provenance import (code_checksum, differing_keys, environment_info, episode_set, fingerprint,
                                            package_version, to_dict)
from experiments.outputs.results import ResultsTable, read_rows, save_figure, write_csv, write_text
from experiments.commands.runner import (CONTROLLER_COLUMNS, FAILURE_COLUMNS, EpisodeResult, RunKey, grid, run_grid,
                                scenario_labels)
from experiments.outputs.summary import failure_note, markdown, network_label
from pev_env.network import network_files
from pev_env.scenarios import data_report_notes, make_scenario, scenario_data_reports, scenario_files

log = logging.getLogger(__name__)

METRICS, SETTINGS, SUMMARY, RUN = "metrics.csv", "settings.json", "summary.md", "run.json"
OUTPUTS = (METRICS, SETTINGS, SUMMARY, RUN, "traces/*_seed*.csv", "plots/violations_unmet.png",
           "plots/area_power_*.png", "plots/soc_*.png", "plots/performance_profiles.png", "models")
"""What a run writes, as patterns for a folder without a manifest (`experiments.outputs.outdir.clear`; removed by
`overwrite` once the first new row is ready)."""


def resolve_models(cfg: CompareConfig, out: Path) -> dict[str, Path]:
    """The model folder of each learned controller that runs: the folder given, or its shipped reference
    model; a trusted pickled zip (`trust_model`) is converted once into out/models/<controller>."""
    from experiments.controllers.rl_model import description_path, is_pickled, reference_model

    models = {}
    for name, given in cfg.model_paths().items():
        if name not in cfg.controllers:
            continue
        path = Path(given) if given else reference_model(name)
        if cfg.trust_model and is_pickled(path):
            from experiments.learning.rl import convert_sb3_zip

            log.warning("trust_model: unpickling %s and converting it into %s", path, out / "models" / name)
            try:
                models[name] = convert_sb3_zip(path, out / "models" / name)
            except Exception as exc:  # noqa: BLE001 - whatever unpickling a foreign file raises
                raise UsageError(f"{cfg.section}.{name}_model = {str(path)!r}: not a Stable-Baselines3 model "
                                 f"that converts ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        else:
            models[name] = description_path(path).parent
    return models


def model_checksums(models: Mapping[str, Path]) -> dict[str, str]:
    """SHA-256 of each model folder's description and weights."""
    from experiments.controllers.rl_model import model_checksum

    return {name: model_checksum(path) for name, path in models.items()}


def models_note(models: Mapping[str, Path], checksums: Mapping[str, str]) -> str:
    """Markdown lines naming the model (and its checksum) behind the rows of each learned controller."""
    lines = [f"- `{name}`: model `{path}` (SHA-256 of model.json + model.safetensors `{checksums[name]}`)"
             for name, path in models.items()]
    return "\n**Learned models** behind the rows:\n" + "\n".join(lines) + "\n" if lines else ""


def _trained_on(folder: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The training scenarios and seeds a model.json records (`training.config`; empty when it records none)."""
    config = _read_json(Path(folder) / "model.json").get("training", {}).get("config", {})
    config = config if isinstance(config, dict) else {}
    return tuple(config.get("scenarios") or ()), tuple(int(s) for s in config.get("seeds") or ())


def training_overlap(models: Mapping[str, Path], scenarios: Sequence[str], seeds: Sequence[int]) -> list[str]:
    """One note per learned model and scenario of the run whose episodes include some its model trained on (the
    scenarios and seeds of its model.json, `training.config`), named as `pev_env.scenarios.episode_names` names
    them (a day is the same day under every scenario name): those rows are not held out."""
    evaluated = {spec: episode_set([spec], seeds) for spec in scenarios}
    trained: dict[tuple[tuple[str, ...], tuple[int, ...]], set[str]] = {}
    notes = []
    for name, folder in models.items():
        key = _trained_on(folder)
        if key not in trained:
            trained[key] = episode_set(*key)
        for spec, found in evaluated.items():
            seen = sorted(found & trained[key])
            if seen:
                notes.append(f"{name}: {len(seen)} of the {len(found)} episodes of {spec} are episodes its model was "
                             f"trained on ({', '.join(seen[:3])}{', ...' if len(seen) > 3 else ''}): not held out")
    return notes


def held_out_unknown(models: Mapping[str, Path]) -> list[str]:
    """One note per learned model whose model.json records no training episodes (no `training.config` scenarios
    and seeds, as a model saved by the user's own trainer or converted from a zip): whether its rows are held
    out is unknown."""
    return [f"{name}: {Path(folder) / 'model.json'} records no training episodes (training.config.scenarios and "
            "seeds): held-out status unknown" for name, folder in models.items() if not all(_trained_on(folder))]


def row_settings(cfg: CompareConfig, controller: str, checksums: Mapping[str, str],
                 files: Mapping[str, str] | None) -> dict[str, Any]:
    """Everything that affects a row of `controller` besides its key: the base plant and the fields the user set
    in it (EnvConfig.user_set, a default value included), the package version and the sha256 of its sources,
    the sha256 of every file the scenario reads (`files`: path -> sha256; None when the scenario does not run
    now), the MPC settings (MPC controllers) and the model checksum (learned controllers that run now)."""
    settings: dict[str, Any] = {"env": cfg.env, "env_set": sorted(cfg.env.user_set),
                                "package_version": package_version(), "code_sha256": code_checksum()}
    if files is not None:
        settings["scenario_files"] = dict(files)
    if controller in registry.mpc_controllers():  # as it runs: mpc-decentralised-tracking fixes its objective
        settings["mpc"] = registry.make_controller(controller, mpc=cfg.mpc).settings
    if controller in checksums:
        settings[f"{controller}_model_sha256"] = checksums[controller]
    if registry.is_plugin(controller):
        settings["plugin_sha256"] = policies_plugin.source_checksum(controller)
    return to_dict(settings)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class SettingsStore:
    """settings.json: fingerprint -> what it hashes (the settings of rows; {"plant": EnvConfig fields} of the
    plants that ran). Rewritten atomically when new fingerprints appear: at once while it is small, else at most
    every FLUSH_S seconds, and by `flush` (at the end of a run, interrupted or not)."""

    FLUSH_S = 10.0
    SMALL = 256

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, {}
        self._unsaved, self._saved_at = False, 0.0

    def start(self, data: Mapping[str, Any]) -> None:
        """Hold `data` (fingerprint -> settings) and write it now."""
        self.data, self._unsaved = dict(data), True
        self.flush()

    def add(self, value: Any) -> str:
        """Record `value` under its fingerprint (returned)."""
        key = fingerprint(value)
        if key not in self.data:
            self.data[key], self._unsaved = to_dict(value), True
            if len(self.data) <= self.SMALL or time.monotonic() - self._saved_at >= self.FLUSH_S:
                self.flush()
        return key

    def flush(self) -> None:
        if self._unsaved:
            write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")
            self._unsaved, self._saved_at = False, time.monotonic()


def resumed_rows(cfg: CompareConfig, out: Path, settings: Mapping[tuple[str, str], Mapping[str, Any]],
                 checksums: Mapping[str, str], columns: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of out/metrics.csv to keep, and the problems of the rows left out (they run again): incomplete
    or corrupt rows, and rows whose plant is not recorded in settings.json.

    `settings`: (controller, scenario label) -> the row settings of this run. A row of a controller or scenario
    that does not run now is compared on what this run can compute (its model and scenario files are left out).
    Raises UsageError naming the differing keys if a complete row was computed with other settings.
    """
    if not (out / METRICS).exists():
        return [], []
    rows, problems = read_rows(out / METRICS, columns)
    known = _read_json(out / SETTINGS)
    differs: dict[str, list[str]] = {}
    kept = []
    for number, row in enumerate(rows):
        controller, label = row["controller"], row["scenario"]
        now = settings.get((controller, label)) or row_settings(cfg, controller, checksums, None)
        before = known.get(row["settings_fingerprint"])
        if row["settings_fingerprint"] != fingerprint(now):
            optional = {"scenario_files", f"{controller}_model_sha256"} - set(now)
            if not isinstance(before, Mapping):
                differs.setdefault(f"{controller}/{label}", [f"fingerprint {row['settings_fingerprint']} not in "
                                                             f"{SETTINGS}"])
                continue
            changed = differing_keys({k: v for k, v in before.items() if k not in optional}, now)
            if changed:
                differs.setdefault(f"{controller}/{label}", changed)
                continue
        if row["plant_fingerprint"] not in known:
            problems.append(f"row {number + 1} ({controller}/{label}/{row['seed']}): its plant "
                            f"{row['plant_fingerprint']} is not recorded in {SETTINGS}")
            continue
        kept.append(row)
    if differs:
        detail = "; ".join(f"{c}: {', '.join(d)}" for c, d in differs.items())
        raise UsageError(f"{cfg.section}.resume: {out / METRICS} holds rows computed with other settings "
                         f"({detail}); use the same settings, --overwrite, or another --out")
    for problem in problems:
        log.warning("%s %s: incomplete or corrupt row left out; it runs again", out / METRICS, problem)
    return kept, problems


class TracePaths(NamedTuple):
    """The trace files of one run."""

    power: Path
    soc: Path
    network: Path
    constraints: Path


def trace_paths(out: Path, key: RunKey) -> TracePaths:
    """The trace paths of one run (module doc)."""
    tails = (".csv", "_soc.csv", "_network.csv", "_network.json")
    return TracePaths(*(out / "traces" / f"{key.stem()}{tail}" for tail in tails))


def write_plots(cfg: CompareConfig, out: Path, metrics: pd.DataFrame,
                checksums: Mapping[str, str] | None = None) -> list[Path]:
    """Bars with CIs from metrics; area power against P_ref (on a network: the most loaded constraint against its
    limit) and SOC panels for the first seed of each scenario."""
    written: list[Path] = []
    if metrics.empty:
        return written

    def save(fig: Any, name: str) -> None:
        save_figure(fig, out / "plots" / name)
        plots.close(fig)
        written.append(out / "plots" / name)

    save(plots.metric_bars(metrics), "violations_unmet.png")
    if rl_report.has_learned(metrics):
        save(plots.performance_profiles(rl_report.profiles(metrics, checksums)), "performance_profiles.png")
    for spec, scenario in scenario_labels(cfg.scenarios).items():
        seed = cfg.seeds[0]
        found = {c: trace_paths(out, RunKey(c, spec, seed, scenario)) for c in cfg.controllers}
        found = {c: p for c, p in found.items() if p.power.exists() and p.soc.exists()}
        if not found:
            continue
        config, episode = make_scenario(spec, seed, base=cfg.env)
        if config.network != "area":  # its constraints are the limits (P_ref one of them only when set)
            save(plots.network_load({c: worst_load(p) for c, p in found.items()},
                                    f"Most loaded network constraint ({scenario}, seed {seed})"),
                 f"network_load_{scenario}.png")
        else:
            power = {c: pd.read_csv(p.power) for c, p in found.items()}
            save(plots.area_power(power, f"Area power against P_ref ({scenario}, seed {seed})"),
                 f"area_power_{scenario}.png")
        soc = {c: pd.read_csv(p.soc) for c, p in found.items()}
        save(plots.pev_energy(soc, episode.soc_target - episode.soc_init,
                              f"Energy per PEV: delivered vs requested ({scenario}, seed {seed})"), f"soc_{scenario}.png")
    return written


def worst_load(paths: TracePaths) -> pd.DataFrame:
    """time_min and load_pct, the largest 100 load / limit over a run's network constraints at each step."""
    loads = pd.read_csv(paths.network)
    constraints = json.loads(paths.constraints.read_text())["constraints"]
    limits = pd.Series({c["column"]: c["limit"] for c in constraints})
    pct = 100.0 * loads[limits.index] / limits
    return pd.DataFrame({"time_min": loads["time_min"], "load_pct": pct.max(axis=1)})


def _in_config_order(metrics: pd.DataFrame, cfg: CompareConfig) -> pd.DataFrame:
    """Rows sorted by the configured scenario, controller and seed order (workers finish in any order)."""
    if metrics.empty:
        return metrics
    rank = {"scenario": list(scenario_labels(cfg.scenarios).values()), "controller": cfg.controllers,
            "seed": cfg.seeds}
    keys = {c: metrics[c].map({v: i for i, v in enumerate(order)}).fillna(len(order)) for c, order in rank.items()}
    return metrics.assign(**{f"_{c}": k for c, k in keys.items()}).sort_values(
        ["_scenario", "_controller", "_seed"]).drop(columns=["_scenario", "_controller", "_seed"])


def compare(cfg: CompareConfig, argv: list[str] | None = None, progress: bool = True,
            title: str = "Controller comparison") -> int:
    """Run the grid of `cfg`; write metrics, summary, traces and plots into cfg.out. Exit code 0 or 1."""
    from pev_env.metrics import METRIC_COLUMNS

    start = time.perf_counter()
    with claim(cfg.out, (METRICS, SUMMARY, RUN), overwrite=cfg.overwrite, resume=cfg.resume) as out:
        models = resolve_models(cfg, out)
        checksums = model_checksums(models)
        overlap = training_overlap(models, cfg.scenarios, cfg.seeds)
        unknown = held_out_unknown(models)
        for note in overlap + unknown:
            log.warning("%s", note)
        labels = scenario_labels(cfg.scenarios)
        files = {spec: run_files(spec, cfg.env.network) for spec in cfg.scenarios}
        settings = {(c, labels[spec]): row_settings(cfg, c, checksums, files[spec])
                    for c in cfg.controllers for spec in cfg.scenarios}
        columns = [*METRIC_COLUMNS, *CONTROLLER_COLUMNS, *FAILURE_COLUMNS]
        kept, rejected = resumed_rows(cfg, out, settings, checksums, columns) if cfg.resume else ([], [])
        table = ResultsTable(out / METRICS, columns, kept)
        if rejected:
            table.save()  # the rows left out leave the file now, whether or not their keys run again
        done = table.done()
        seeds_done: dict[str, set[int]] = {}
        for _, label, seed in done:
            seeds_done.setdefault(label, set()).add(int(seed))
        grid_keys, notes = grid(cfg.controllers, cfg.scenarios, cfg.seeds, seeds_done)
        for note in notes:
            log.warning("%s", note)
        keys = [k for k in grid_keys if (k.controller, k.label, k.seed) not in done]
        if done:
            log.info("resume: %d runs already in %s, %d to go", len(done), table.path, len(keys))
        store = SettingsStore(out / SETTINGS)
        added: list[RunKey] = []
        episodes: dict[str, dict[str, str]] = _read_json(out / RUN).get("episodes", {}) if cfg.resume else {}

        def on_result(key: RunKey, result: EpisodeResult) -> None:
            if not added:  # the first new row: only now may earlier outputs go
                if cfg.overwrite:
                    clear(out, OUTPUTS)
                store.start({**_read_json(out / SETTINGS), **{fingerprint(s): s for s in settings.values()}})
            if cfg.traces:
                paths = trace_paths(out, key)
                write_csv(paths.power, result.trace)
                write_csv(paths.soc, result.soc)
                write_csv(paths.network, result.network)
                write_text(paths.constraints, json.dumps(result.constraints, indent=2) + "\n")
            plant = store.add({"plant": result.plant})
            if result.episode and result.episode != key.label:   # a day or a file's episode, not a generated one
                episodes.setdefault(key.label, {})[str(key.seed)] = result.episode
            table.add({**result.row, "package_version": package_version(), "plant_fingerprint": plant,
                       "settings_fingerprint": fingerprint(settings[key.controller, key.label])})
            added.append(key)

        try:
            with open_backend(cfg) as backend:
                failures = run_grid(keys, on_result, models=tuple((n, str(p)) for n, p in models.items()),
                                    backend=backend, progress=progress, mpc=cfg.mpc, env=cfg.env,
                                    timeout=cfg.run_timeout)
        except OSError as exc:  # a results file cannot be written (read-only traces/, a full disk)
            raise UsageError(f"out = {str(out)!r}: cannot write {exc.filename2 or exc.filename or 'a result file'} "
                             f"({exc.strerror or exc}); stopped, the {len(table.done())} finished rows are kept "
                             "(--resume goes on)") from None
        finally:
            with contextlib.suppress(OSError):
                store.flush()
        if failures and not added:
            print(f"no run finished ({len(failures)} FAILED, see the log); {out} is left as it was", file=sys.stderr)
            return 1
        changed = [labels[spec] for spec in cfg.scenarios if _files_now(spec, cfg.env.network) != files[spec]]
        if changed:
            log.error("scenario files changed during the run: rows of %s may come from either version; run them "
                      "again with --overwrite (a --resume refuses them)", ", ".join(changed))
        metrics = _in_config_order(table.frame(), cfg)
        plants = {fp: store.data.get(fp, {}).get("plant") for fp in sorted(set(metrics["plant_fingerprint"]))}
        bounds = [c for c in dict.fromkeys(metrics["controller"]) if not registry.is_causal(c)]
        text = (markdown(metrics, title=title, reference=cfg.reference_controller(), networks=_networks(metrics, plants),
                         bounds=bounds)
                + rl_report.markdown(metrics, checksums, bounds)
                + models_note(models, checksums))
        shared = shared_days(_episodes_of(metrics, episodes))
        if notes or shared:
            text += "\n**Repeated episodes** (n counts distinct episodes):\n" + "".join(f"- {n}\n" for n in
                                                                                   [*notes, *shared])
        if overlap:
            text += "\n**Not held out** (evaluation episodes a model trained on):\n" + "".join(f"- {n}\n" for n in overlap)
        if unknown:
            text += "\n**Held-out status unknown**:\n" + "".join(f"- {n}\n" for n in unknown)
        reports = scenario_data_reports(cfg.scenarios, cfg.env)
        cleaned = data_report_notes(reports)
        if cleaned:
            text += "\n**Data** (what reading the files left out or read by a rule; `data_report` in run.json):\n" + "".join(
                f"- {line}\n" for line in cleaned)
        if changed:
            text += ("\n**Scenario files changed during the run**: the rows of " + ", ".join(changed) + " may come from "
                     "either version; run them again with --overwrite.\n")
        if failures:
            text += "\n**Failed runs** (see the log): " + ", ".join(f.key.stem() for f in failures) + "\n"
        write_text(out / SUMMARY, text)
        if cfg.plots:
            write_plots(cfg, out, metrics, checksums)
        wall = time.perf_counter() - start
        info = {"command": argv if argv is not None else sys.argv, "config": to_dict(cfg),
                "env_set": sorted(cfg.env.user_set), "plants": plants,
                "models": {n: {"path": str(p), "sha256": checksums[n]} for n, p in models.items()},
                "rows": {c: sorted(set(metrics[c].tolist())) for c in ("controller", "scenario", "seed")},
                "wall_time_s": round(wall, 2), "failures": [f.key.stem() for f in failures],
                "rerun_rows": rejected, "repeated_episodes": notes, "not_held_out": overlap,
                "held_out_unknown": unknown,
                "scenario_files_changed": changed,
                "scenario_files": {spec: f for spec, f in files.items() if f},
                "episodes": _episodes_of(metrics, episodes),
                "data_report": reports, "environment": environment_info()}
        write_text(out / RUN, json.dumps(info, indent=2) + "\n")
    print(text)
    note = failure_note(metrics)
    if note:
        log.warning("%s", note)
    print(f"{len(metrics)} rows in {out / METRICS}; wall time {wall:.1f} s"
          + (f"; {len(failures)} runs FAILED" if failures else ""))
    return 1 if failures or changed else 0


def _networks(metrics: pd.DataFrame, plants: Mapping[str, Any]) -> dict[str, str]:
    """Scenario -> the site network(s) its rows ran on, in words (none for the area limit)."""
    labels: dict[str, set[str]] = {}
    for scenario, fp in zip(metrics["scenario"], metrics["plant_fingerprint"]):
        labels.setdefault(scenario, set()).add(network_label(plants.get(fp) or {}))
    return {scenario: "; ".join(sorted(found - {""})) for scenario, found in labels.items() if found - {""}}


def shared_days(episodes: Mapping[str, Mapping[str, str]]) -> list[str]:
    """A note per group of scenarios whose rows ran the same episodes (`acn-caltech` and `acn-caltech-network`: one
    week on two plants): the statistics that pool scenarios (probability of improvement, performance profiles)
    count such days once per scenario, as if they were independent."""
    labels = sorted(episodes)
    notes = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            common = set(episodes[a].values()) & set(episodes[b].values())
            if common:
                notes.append(f"{a} and {b} share {len(common)} episode(s) ({', '.join(sorted(common)[:3])}"
                             f"{', ...' if len(common) > 3 else ''}): statistics pooled over scenarios count them "
                             "once per scenario, so their intervals are narrower than independent days would give")
    return notes


def _episodes_of(metrics: pd.DataFrame, names: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """scenario label -> seed -> the episode's name (the day of an ACN scenario), for the rows of `metrics`
    (a name recorded by an earlier run of a resumed folder included; rows without one are left out)."""
    out: dict[str, dict[str, str]] = {}
    for label, seed in sorted(set(zip(metrics["scenario"], metrics["seed"]))):
        name = names.get(label, {}).get(str(seed))
        if name:
            out.setdefault(label, {})[str(seed)] = name
    return out


def run_files(spec: str, network: str) -> dict[str, str]:
    """The data files the rows of scenario `spec` on network `network` read -> their sha256: the scenario's
    (`scenario_files`) and a network file's (`network:PATH`, `network_files`)."""
    return {**scenario_files(spec), **network_files(network)}


def _files_now(spec: str, network: str) -> dict[str, str] | None:
    """`run_files` now (None when a file cannot be read any more)."""
    try:
        return run_files(spec, network)
    except OSError:
        return None
