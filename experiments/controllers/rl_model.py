"""Safe model files of learned station policies, and the controller that runs them (numpy only, no torch).

A model is a folder with two files:

* `model.json`: the description: format, algorithm, controller name, the input features, the layer names
  in order, the activation, the normaliser's clip/epsilon, the SHA-256 of the weights, and how the model
  was trained (command, configuration, held-out seeds/days);
* `model.safetensors`: the tensors: `<layer>.weight` (out, in) and `<layer>.bias` (out,) of each linear
  layer of the actor (the activation between layers, none after the last), and `obs_mean`/`obs_var` of the
  running feature normaliser.

Neither file can hold code: loading parses a JSON document and a safetensors table of plain arrays. A
Stable-Baselines3 `model.zip` holds pickled objects (loading it with `PPO.load` runs whatever they carry),
so it is refused unless the user passes `--trust-model`; then it is converted once into this format
(`experiments.learning.rl.convert_sb3_zip`) and only the converted copy is run.

The reference models ship inside the package (`experiments/controllers/models/<controller>/`, found with
`importlib.resources` from any working directory).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from experiments.outputs.provenance import file_checksum
from experiments.outputs.results import recorded_atomic_path, write_text
from pev_env.feasibility import ACTION_MODES, FeasibilityLayer
from pev_env.learning import AreaPrice, input_names, policy_inputs
from pev_env.network import area_network
from pev_mpc.policies.base import Observed, Policy

FORMAT = "pev-mpc-policy/1"
DESCRIPTION_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}
TRUST_HINT = ("pass --trust-model only for a file you made yourself: it is then converted once into the safe "
              "format (model.json + model.safetensors)")


class ModelError(ValueError):
    """A model that is missing, unreadable, inconsistent or unsafe (exit code 2 on the command line)."""


def reference_model(controller: str) -> Path:
    """The folder of the reference model of `controller` shipped in the package (experiments/controllers/models/...)."""
    return Path(str(resources.files("experiments.controllers") / "models" / controller))


def is_pickled(path: Path) -> bool:
    """True for a zip file (Stable-Baselines3 `model.zip`): its `data` entries are unpickled on load."""
    return path.is_file() and zipfile.is_zipfile(path)


def description_path(path: str | Path) -> Path:
    """`model.json` of a model given as its folder or its description file."""
    path = Path(path)
    return path / DESCRIPTION_FILE if path.is_dir() else path


@dataclass(frozen=True)
class SavedModel:
    """A loaded model: its description, its tensors and where they came from."""

    path: Path
    """The model's folder."""
    description: dict[str, Any]
    tensors: dict[str, np.ndarray]

    @property
    def action_mode(self) -> str:
        """How its actions become power (`pev_env.feasibility`; models before the layer are raw)."""
        return str(self.description.get("action_mode", "raw"))

    @property
    def checksum(self) -> str:
        """SHA-256 of the description and the weights (what summary.md and run.json record)."""
        return model_checksum(self.path)

    def layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight, bias) of each linear layer, input first."""
        return [(self.tensors[f"{n}.weight"], self.tensors[f"{n}.bias"]) for n in self.description["layers"]]

    def actor(self, features: np.ndarray) -> np.ndarray:
        """Deterministic actions (N,) of the normalised features (N, n_features)."""
        norm = self.description["normalizer"]
        std = np.sqrt(self.tensors["obs_var"] + norm["epsilon"])
        x = np.clip((features - self.tensors["obs_mean"]) / std, -norm["clip"], norm["clip"])
        activation = ACTIVATIONS[self.description["activation"]]
        layers = self.layers()
        for weight, bias in layers[:-1]:
            x = activation(x @ weight.T + bias)
        weight, bias = layers[-1]
        return (x @ weight.T + bias).reshape(-1)


def model_checksum(folder: Path) -> str:
    """SHA-256 over model.json and model.safetensors of a model folder."""
    return file_checksum(folder / DESCRIPTION_FILE, folder / WEIGHTS_FILE)


def save_model(folder: str | Path, tensors: dict[str, np.ndarray], description: dict[str, Any]) -> Path:
    """Write model.safetensors and model.json (with FORMAT and the weights' SHA-256) into `folder`; its path."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    _check(SavedModel(folder, description, {k: np.asarray(v, np.float64) for k, v in tensors.items()}), str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    with recorded_atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(tmp))
    info = {"format": FORMAT, **description, "weights": WEIGHTS_FILE,
            "weights_sha256": file_checksum(folder / WEIGHTS_FILE)}
    write_text(folder / DESCRIPTION_FILE, json.dumps(info, indent=2) + "\n")
    return folder


def load_model(path: str | Path, key: str = "ppo_model") -> SavedModel:
    """Load a model folder (or its model.json) without running any code from it; ModelError names `key` and
    the problem (missing, pickled, unreadable, inconsistent)."""
    shown = f"{key} = {str(path)!r}"
    source = Path(path)
    if is_pickled(source):
        raise ModelError(f"{shown}: holds pickled objects (a Stable-Baselines3 zip; loading it would run any "
                         f"code inside); refused. Allowed: a model folder (model.json + model.safetensors); "
                         f"{TRUST_HINT}")
    desc_path = description_path(source)
    if not desc_path.is_file():
        raise ModelError(f"{shown}: {desc_path} not found; allowed: a model folder written by `pev-experiments "
                         "train` (model.json + model.safetensors); a missing model is never retrained on the fly")
    try:
        description = json.loads(desc_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{shown}: {desc_path} is not a JSON model description ({type(exc).__name__})") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ModelError(f"{shown}: {desc_path} is not a model description of format {FORMAT!r}")
    weights = desc_path.parent / WEIGHTS_FILE
    try:
        digest = file_checksum(weights)
        if digest != description.get("weights_sha256"):
            raise ModelError(f"{shown}: {weights} does not match the SHA-256 recorded in {desc_path}")
        from safetensors.numpy import load_file

        tensors = {k: v.astype(np.float64) for k, v in load_file(str(weights)).items()}
    except ModelError:
        raise
    except Exception as exc:  # safetensors raises its own error type for a malformed header
        raise ModelError(f"{shown}: {weights} is not readable as safetensors ({type(exc).__name__}: {exc})") from None
    model = SavedModel(desc_path.parent, description, tensors)
    _check(model, shown)
    return model


def _check(model: SavedModel, shown: str) -> None:
    """The description and the tensors agree: a chain of linear layers from this version's policy inputs
    (`pev_env.learning.input_names`) to one action."""
    d = model.description
    try:
        n_in = len(d["features"])
        if model.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode {model.action_mode!r} (allowed: {', '.join(ACTION_MODES)})")
        expected = input_names(float(d.get("price_alpha", 0.0)), model.action_mode)
        if list(d["features"]) != expected:
            raise ValueError(f"features {d['features']} (allowed: {expected})")
        if d["activation"] not in ACTIVATIONS:
            raise ValueError(f"activation {d['activation']!r} (allowed: {', '.join(ACTIVATIONS)})")
        shapes = [(w.shape, b.shape) for w, b in model.layers()]
        float(d["normalizer"]["clip"]), float(d["normalizer"]["epsilon"])
        if model.tensors["obs_mean"].shape != (n_in,) or model.tensors["obs_var"].shape != (n_in,):
            raise ValueError(f"normaliser shape (allowed: ({n_in},))")
        bad = [name for name, t in model.tensors.items() if not np.isfinite(t).all()]
        if bad or (model.tensors["obs_var"] < 0).any():
            raise ValueError(f"tensors {bad or ['obs_var']} (allowed: finite numbers, obs_var >= 0)")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{shown}: inconsistent model description or tensors ({exc!r})") from None
    width = n_in
    for (w_shape, b_shape), name in zip(shapes, d["layers"]):
        if len(w_shape) != 2 or w_shape[1] != width or b_shape != (w_shape[0],):
            raise ModelError(f"{shown}: layer {name} has shape {w_shape} after {width} inputs")
        width = w_shape[0]
    if width != 1:
        raise ModelError(f"{shown}: the last layer gives {width} outputs; allowed: 1 action per station")


class LearnedPolicy(Policy):
    """A saved model as a controller: each station's features -> normaliser -> actor (decentralised) -> kW by the
    model's action mode (`pev_env.feasibility.FeasibilityLayer` on the plant's network: raw, or the fill that keeps
    every limit)."""

    def __init__(self, model: SavedModel) -> None:
        super().__init__()
        self.model = model
        self.name = str(model.description.get("controller", "ppo"))
        alpha = float(model.description.get("price_alpha", 0.0))
        self._price = AreaPrice(alpha) if alpha > 0 else None
        self._raw: np.ndarray | None = None
        self._layer: FeasibilityLayer | None = None

    @classmethod
    def load(cls, path: str | Path, key: str = "ppo_model") -> LearnedPolicy:
        """The controller of the model at `path` (`load_model`)."""
        return cls(load_model(path, key))

    def act_array(self, obs: np.ndarray) -> np.ndarray:
        """Requested powers (N,) kW: the shared actor applied to each station's features."""
        self._raw = obs
        return super().act_array(obs)

    def _reset(self, config: Any, scenario: Any, seed: int | None) -> None:
        network = self.network if self.network is not None else area_network(config.n_stations, config.P_ref)
        self._layer = FeasibilityLayer(self.model.action_mode, network)
        if self._price is not None:
            self._price.reset()

    def _act(self, ob: Observed) -> tuple[np.ndarray, dict[str, Any]]:
        inputs = policy_inputs(self._raw, self.config, self._price, self.model.action_mode).astype(np.float64)
        stats = {} if self._price is None else {"price": self._price.value}
        return self._layer(self.model.actor(inputs), self._raw, self.config), stats
