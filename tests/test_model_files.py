"""Safe model files: weights + JSON only, pickled content refused (nothing executed) unless --trust-model,
the numpy actor equal to the SB3 policy it was exported from, the shipped reference model found from anywhere."""
from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from experiments.cli.main import main
from experiments.controllers.rl_model import (DESCRIPTION_FILE, WEIGHTS_FILE, ModelError, load_model, model_checksum,
                                  reference_model, save_model)
from pev_env.learning import N_FEATURES

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--scenarios", "seed", "--seeds", "0", "-q", "--no-traces", "--no-plots"]


class _Payload:
    """Unpickling this creates the file `marker` (what a malicious model would do instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _crafted_sb3_zip(path: Path, marker: Path) -> Path:
    """A Stable-Baselines3-style model.zip whose `data` carries a pickled payload (as SB3's ":serialized:")."""
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>",
                             ":serialized:": base64.b64encode(pickle.dumps(_Payload(marker))).decode()}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data", json.dumps(data))
        zf.writestr("policy.pth", b"")
    (path.parent / "normalizer.npz").write_bytes(b"")
    return path


def _stops(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_the_payload_is_real(tmp_path) -> None:
    """The crafted payload does create its file when unpickled (so the tests below prove something)."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_pickled_model_zip_is_refused_and_nothing_runs(tmp_path, capsys) -> None:
    marker = tmp_path / "pwned"
    model = _crafted_sb3_zip(tmp_path / "model.zip", marker)
    for command in ("compare", "evaluate"):
        err = _stops(capsys, command, *FAST, "--controllers", "ppo", "--ppo-model", str(model), "--out",
                     str(tmp_path / command))
        assert "holds pickled objects" in err and "--trust-model" in err
    assert not marker.exists() and not (tmp_path / "compare").exists()


def test_pickle_disguised_as_safetensors_is_unreadable_and_nothing_runs(tmp_path, capsys) -> None:
    marker = tmp_path / "pwned"
    folder = save_model(tmp_path / "m", _tensors(np.random.default_rng(0)), _description())
    (folder / WEIGHTS_FILE).write_bytes(pickle.dumps(_Payload(marker)))
    description = json.loads((folder / DESCRIPTION_FILE).read_text())
    from experiments.outputs.provenance import file_checksum

    description["weights_sha256"] = file_checksum(folder / WEIGHTS_FILE)
    (folder / DESCRIPTION_FILE).write_text(json.dumps(description))
    err = _stops(capsys, "evaluate", *FAST, "--ppo-model", str(folder), "--out", str(tmp_path / "out"))
    assert "is not readable as safetensors" in err and not marker.exists()


def _tensors(rng: np.random.Generator, hidden: int = 8) -> dict[str, np.ndarray]:
    return {"obs_mean": rng.normal(size=N_FEATURES), "obs_var": rng.uniform(0.5, 2.0, N_FEATURES),
            "l0.weight": rng.normal(size=(hidden, N_FEATURES)), "l0.bias": rng.normal(size=hidden),
            "out.weight": rng.normal(size=(1, hidden)), "out.bias": rng.normal(size=1)}


def _description() -> dict:
    from pev_env.learning import FEATURES

    return {"controller": "ppo", "features": list(FEATURES), "activation": "tanh", "layers": ["l0", "out"],
            "normalizer": {"clip": 10.0, "epsilon": 1e-8}, "training": {}}


def test_tampered_or_inconsistent_models_are_refused(tmp_path) -> None:
    folder = save_model(tmp_path / "m", _tensors(np.random.default_rng(1)), _description())
    assert load_model(folder).checksum == model_checksum(folder)
    (folder / WEIGHTS_FILE).write_bytes((folder / WEIGHTS_FILE).read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        load_model(folder)
    bad = _tensors(np.random.default_rng(2))
    bad["out.weight"], bad["out.bias"] = np.zeros((2, 8)), np.zeros(2)
    with pytest.raises(ModelError, match="outputs"):
        save_model(tmp_path / "bad", bad, _description())
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nowhere")


def test_numpy_actor_equals_the_sb3_policy_it_was_exported_from(tmp_path) -> None:
    from stable_baselines3 import PPO

    from experiments.learning.rl import StationVecEnv, describe, sb3_tensors

    model = PPO("MlpPolicy", StationVecEnv(["seed"], [1000]), n_steps=8, batch_size=8, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16, 16]})
    rng = np.random.default_rng(3)
    mean, var = rng.normal(size=N_FEATURES), rng.uniform(0.5, 2.0, N_FEATURES)
    saved = load_model(save_model(tmp_path / "m", sb3_tensors(model, mean, var), describe(model, 10.0, 1e-8, {})))
    x = rng.normal(size=(32, N_FEATURES)) * 3
    normed = np.clip((x - mean) / np.sqrt(var + 1e-8), -10, 10).astype(np.float32)
    expected, _ = model.predict(normed, deterministic=True)
    np.testing.assert_allclose(np.clip(saved.actor(x), -1, 1), expected.reshape(-1), atol=1e-5)


def test_trusted_sb3_zip_is_converted_once_and_evaluated(tmp_path) -> None:
    """--trust-model converts a legacy SB3 model.zip into out/models/ppo; the rows name the converted model."""
    from stable_baselines3 import PPO

    from experiments.learning.rl import StationVecEnv

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    PPO("MlpPolicy", StationVecEnv(["seed"], [1000]), n_steps=8, batch_size=8, seed=0, device="cpu").save(
        legacy / "model.zip")
    np.savez(legacy / "normalizer.npz", mean=np.zeros(N_FEATURES), var=np.ones(N_FEATURES), clip=10.0, epsilon=1e-8)
    out = tmp_path / "out"
    assert main(["evaluate", *FAST, "--ppo-model", str(legacy / "model.zip"), "--trust-model", "--out",
                 str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["models"]["ppo"] == {"path": str(out / "models" / "ppo"),
                                    "sha256": model_checksum(out / "models" / "ppo")}
    converted = json.loads((out / "models" / "ppo" / DESCRIPTION_FILE).read_text())
    assert converted["training"]["converted_from"] == str(legacy / "model.zip")


@pytest.mark.parametrize("controller", ["ppo", "mappo", "ppo-price", "ppo-safe", "ppo-residual", "mappo-safe",
                                        "mappo-lagrangian"])
def test_reference_model_is_shipped_and_found_from_any_directory(tmp_path, controller) -> None:
    """Each reference model loads from another working directory and records its training command, trained on the
    training scenarios and never on an evaluation day."""
    description = json.loads((reference_model(controller) / DESCRIPTION_FILE).read_text())
    assert description["training"]["command"][:2] == ["pev-experiments", "train"]
    scenarios = set(description["training"]["config"]["scenarios"])
    assert {"seed", "seed-20", "acn-caltech-train"} <= scenarios
    assert not scenarios & {"acn-caltech", "acn-caltech-eval", "acn-caltech-network"}
    code = ("from experiments.controllers.rl_model import reference_model, load_model; "
            f"print(load_model(reference_model({controller!r})).description['controller'])")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout, whichever one is installed
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == controller


def test_price_informed_model_sees_the_area_price() -> None:
    """A price-informed model's extra input is the coordinator's price, updated from the observed area residual."""
    from experiments.controllers.rl_model import LearnedPolicy, SavedModel
    from pev_env.core import ChargingCore
    from pev_env.learning import PRICE_FEATURE, AreaPrice
    from pev_env.scenarios import make_scenario

    tensors = _tensors(np.random.default_rng(4))
    tensors["l0.weight"] = np.zeros((8, N_FEATURES + 1))
    tensors["obs_mean"], tensors["obs_var"] = np.zeros(N_FEATURES + 1), np.ones(N_FEATURES + 1)
    description = {**_description(), "controller": "ppo-price", "price_alpha": 0.5}
    description["features"] = [*description["features"], PRICE_FEATURE]
    policy = LearnedPolicy(SavedModel(Path("."), description, tensors))
    config, scenario = make_scenario("seed", 0)
    core, reference = ChargingCore(config, scenario), AreaPrice(0.5)
    obs = core.reset()
    policy.reset(config, scenario, 0)
    while not core.done:
        kw = policy.act_array(obs)
        assert policy.last_stats["price"] == reference.update(obs)
        obs = core.step(np.full_like(kw, config.p_max)).observations  # every station at full power: overloads
    assert policy.last_stats["price"] > 0
    with pytest.raises(ValueError, match="alpha"):
        AreaPrice(0.0)


def test_nan_weights_negative_obs_var_and_deep_json_are_refused(tmp_path) -> None:
    """Issue 20: models that passed the checks and crashed later stop with one ModelError."""
    for name, value in (("out.weight", np.nan), ("obs_var", -1.0)):
        tensors = _tensors(np.random.default_rng(3))
        tensors[name] = np.full_like(tensors[name], value)
        with pytest.raises(ModelError, match="finite numbers, obs_var >= 0"):
            save_model(tmp_path / name, tensors, _description())
    deep = save_model(tmp_path / "deep", _tensors(np.random.default_rng(4)), _description())
    (deep / DESCRIPTION_FILE).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelError, match="is not a JSON model description"):
        load_model(deep)


def test_a_trusted_zip_that_is_no_sb3_model_stops_with_one_line(tmp_path, capsys) -> None:
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    with zipfile.ZipFile(legacy / "model.zip", "w") as archive:
        archive.writestr("hello.txt", "not a model")
    np.savez(legacy / "normalizer.npz", mean=np.zeros(N_FEATURES), var=np.ones(N_FEATURES), clip=10.0, epsilon=1e-8)
    err = _stops(capsys, "evaluate", *FAST, "--ppo-model", str(legacy / "model.zip"), "--trust-model", "--out",
                 str(tmp_path / "out"))
    assert "evaluate.ppo_model = " in err and "not a Stable-Baselines3 model that converts" in err
    assert err.count("\n") == 1 and "Traceback" not in err
