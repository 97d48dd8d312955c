"""The agent contract: what an algorithm provides so that one loop trains them all.

An algorithm is one file with a config dataclass and an :class:`Agent` subclass,
plus an entry in the registry (``agents/__init__.py``) and presets
(``agents/presets.py``). The loop (:mod:`kerasdojo.agents.loop`) calls only
``begin`` once and then ``learn`` until the step budget is spent; evaluation
calls ``act``; checkpoints call ``state``/``load_state``. So an agent provides:

* ``__init__(cfg, obs_shape, obs_dtype, action_space, seed)``: its networks,
  one optimizer per network (or per loss), and its compiled update;
* ``act(obs, deterministic)``: actions for a batch of observations (NumPy in,
  NumPy out; indices for Discrete spaces, unclipped arrays for Box ones);
* ``learn(env, step, total_steps) -> (env_steps, scalars)``: collect from the
  vector env and update once. On-policy agents (PPO, A2C) collect a rollout
  and run every epoch of their update; off-policy agents (DQN, SAC, TD3)
  collect ``train_freq`` steps into their replay buffer and run their gradient
  steps. ``scalars`` use SB3's TensorBoard tags (``train/...``);
* what a checkpoint holds, by name: ``networks()`` (target networks too),
  ``optimizers()``, ``variables()`` (trainable tensors outside the networks: a
  Gaussian log-std, SAC's log entropy coefficient), and ``extra_state(buffers)``
  / ``load_extra_state`` for the rest (replay buffer, counters, exploration
  noise state); RNG states and the update count are saved here for every agent;
* ``policy_model()``: the Keras model a user keeps (``policy.keras``), or None;
* ``refresh()``: called after weights change outside an update (a checkpoint
  loaded), to refresh any NumPy copy used for acting;
* ``supports_normalization``: False for agents whose replay buffer would mix
  observations scaled by different running statistics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend
from kerasdojo.config import option, validate
from kerasdojo.errors import DojoError
from kerasdojo.networks import ACTIVATIONS, PRECISIONS, NumpyForward


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Fields every agent has; presets and --set may change any of them."""

    kind: ClassVar[str] = "agent"

    n_envs: int = option(1, "Environments stepped in parallel (one vector env).", low=1)
    total_steps: int = option(100_000, "Environment steps to train for (summed over envs).", low=1)
    normalize_obs: bool = option(False, "Standardise observations with running statistics (saved with the agent).")
    normalize_reward: bool = option(False, "Scale rewards by the running std of the discounted return.")
    net_arch: tuple[int, ...] = option((64, 64), "Hidden layer widths of each network.", low=1)
    activation: str = option("tanh", "Hidden activation.", choices=ACTIVATIONS)
    jit_compile: bool = option(True, "Compile the update with XLA (faster on CPU and GPU).")
    fast_act: bool = option(True, "Act through a NumPy copy of Dense-only networks (a TF call costs ~0.3 ms on CPU).")
    atari_wrapper: bool = option(
        True, "ALE ids: the standard Atari preprocessing (84x84 gray, 4 frames, skip 4; false: raw frames)."
    )
    precision: str = option(
        "auto",
        "Math of CNN updates: mixed_bfloat16 (bfloat16 math, float32 weights), float32, or auto "
        "(mixed_bfloat16 for the Nature CNN where the CPU or GPU does bfloat16 natively). policy.keras is float32.",
        choices=PRECISIONS,
    )

    def __post_init__(self) -> None:
        validate(self, f"{self.kind} config")


def linear(start: float, end: float, fraction: float, progress: float) -> float:
    """Linear from ``start`` to ``end`` over the first ``fraction`` of training, then ``end``.
    ``progress`` is the fraction of training done, in [0, 1]."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(progress / fraction, 1.0)


def schedule(kind: str, value: float, progress: float) -> float:
    """``constant``: value; ``linear``: value decayed linearly to 0 at the end (RL Zoo's ``lin_``)."""
    return value if kind == "constant" else value * max(1.0 - progress, 0.0)


class Forward:
    """Run a set of Keras models on a batch of observations and return NumPy outputs.

    Uses :class:`NumpyForward` copies when every model is Dense-only and
    ``fast`` is set, else one compiled TensorFlow call for all models. Call
    :meth:`refresh` after the weights change.
    """

    def __init__(
        self, models: Sequence[Any], fast: bool = True, jit: bool = False, source: Sequence[Any] | None = None
    ) -> None:
        """``jit``: compile the TensorFlow call with XLA (CNNs: a Nature-CNN forward pass on one
        stack of frames takes 1.1 ms with XLA and 2.4 ms without, on this project's CPU).
        ``source``: the trained models, when ``models`` are float32 twins of them (same layers,
        another dtype policy) to act with; :meth:`refresh` copies their weights over. XLA's CPU
        bfloat16 convolutions take ~6x longer than its float32 ones on one stack of frames."""
        self.models = list(models)
        self._copy = None
        if source is not None:
            tf = backend.tf()
            pairs = [
                (d, s)
                for dm, sm in zip(self.models, source, strict=True)
                for d, s in zip(dm.weights, sm.weights, strict=True)
            ]
            for d, s in pairs:
                if tuple(d.shape) != tuple(s.shape):
                    raise ValueError(f"Forward: twin weight {d.path} {d.shape} != {s.path} {s.shape}")

            @tf.function
            def copy() -> None:
                for d, s in pairs:
                    d.assign(s.value)

            self._copy = copy
            copy()
        copies = [NumpyForward.of(m) for m in self.models] if fast else [None]
        if fast and all(c is not None for c in copies):
            self._np: list[NumpyForward] | None = copies  # type: ignore[assignment]
        else:
            self._np = None
            tf = backend.tf()
            models_ = self.models

            @tf.function(reduce_retracing=True, jit_compile=jit)
            def call(obs: Any) -> list[Any]:
                outs: list[Any] = []
                for m in models_:  # a model with several outputs (a shared torso) adds them all
                    o = m(obs, training=False)
                    outs.extend(o if isinstance(o, (list, tuple)) else [o])
                return outs

            self._tf = call

    @property
    def numpy(self) -> bool:
        """Whether acting runs on NumPy copies of the weights (which a running update leaves alone)."""
        return self._np is not None

    def refresh(self) -> None:
        if self._copy is not None:
            self._copy()
        if self._np is not None:
            for copy in self._np:
                copy.refresh()

    def __call__(self, obs: np.ndarray) -> list[np.ndarray]:
        if self._np is not None:
            return [f(obs) for f in self._np]
        return [o.numpy() for o in self._tf(obs)]


class Agent:
    """Base class: the contract above, and the state round-trip every agent shares."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[AgentConfig]] = AgentConfig
    supports_normalization: ClassVar[bool] = True

    def __init__(
        self, cfg: AgentConfig, obs_shape: tuple[int, ...], obs_dtype: Any, action_space: Any, seed: int
    ) -> None:
        tf = backend.tf()
        self.cfg = cfg
        self.obs_shape = tuple(obs_shape)
        self.obs_dtype = np.dtype(obs_dtype)
        self.action_space = action_space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.tf_rng = tf.random.Generator.from_seed(seed)
        self.n_updates = 0
        self.obs: np.ndarray | None = None
        self.notes: list[str] = []  # one-line facts the CLI prints at start (replay memory)
        self.precision = "float32"  # the networks' dtype policy (CNN agents may pick mixed_bfloat16)

    # ------------------------------------------------------------------ interface
    def begin(self, env: Any) -> None:
        """Start collecting from ``env``, which has just been reset."""
        self.obs = env.obs

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        """Collect and update once; return (env steps taken, scalars to log)."""
        raise NotImplementedError

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations (indices for Discrete spaces)."""
        raise NotImplementedError

    def networks(self) -> dict[str, Any]:
        return {}

    def optimizers(self) -> dict[str, Any]:
        return {}

    def variables(self) -> dict[str, Any]:
        """Trainable variables outside the networks (e.g. a Gaussian log-std)."""
        return {}

    def policy_model(self) -> Any | None:
        """The network a user needs to act (logits, Gaussian mean or Q values), or None."""
        return None

    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and metadata beyond weights and optimizer slots: counters, and with
        ``buffers`` the data a resume needs (a replay buffer), which a saved agent leaves out."""
        return {}, {}

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        pass

    def refresh(self) -> None:
        """Called after weights change outside an update (loading a checkpoint)."""

    # ------------------------------------------------------------------ state
    def state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything a resume needs (``buffers=False``: all but replay data, for a saved agent)."""
        arrays: dict[str, np.ndarray] = {}
        for name, model in self.networks().items():
            for i, w in enumerate(model.weights):
                arrays[f"net/{name}/{i}"] = np.asarray(w.numpy())
        for name, opt in self.optimizers().items():
            for i, v in enumerate(opt.variables):
                arrays[f"opt/{name}/{i}"] = np.asarray(v.numpy())
        for name, var in self.variables().items():
            arrays[f"var/{name}"] = np.asarray(var.numpy())
        arrays["rng/tf"] = self.tf_rng.state.numpy()
        extra_arrays, extra_meta = self.extra_state(buffers)
        arrays.update(extra_arrays)
        meta = {"rng/numpy": self.rng.bit_generator.state, "n_updates": self.n_updates, **extra_meta}
        return arrays, meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str = "checkpoint") -> None:
        def assign(key: str, var: Any) -> None:
            if key not in arrays:
                raise DojoError(f"{source} lacks {key}: it was saved by a different agent or network shape")
            value = arrays[key]
            if tuple(value.shape) != tuple(var.shape):
                raise DojoError(
                    f"{source} does not match this agent: {key} has shape {value.shape}, expected {tuple(var.shape)}"
                )
            var.assign(value)

        for name, model in self.networks().items():
            for i, w in enumerate(model.weights):
                assign(f"net/{name}/{i}", w)
        for name, opt in self.optimizers().items():
            for i, v in enumerate(opt.variables):
                assign(f"opt/{name}/{i}", v)
        for name, var in self.variables().items():
            assign(f"var/{name}", var)
        if "rng/tf" in arrays:
            self.tf_rng.state.assign(arrays["rng/tf"])
        if "rng/numpy" in meta:
            self.rng.bit_generator.state = meta["rng/numpy"]
        self.n_updates = int(meta.get("n_updates", 0))
        self.load_extra_state(arrays, meta)
        self.refresh()


def compiled(fn: Callable[..., Any], jit: bool) -> Any:
    """``tf.function`` with retracing kept down; XLA when ``jit``."""
    tf = backend.tf()
    return tf.function(fn, jit_compile=jit, reduce_retracing=True)


def cnn_precision(setting: str, obs_shape: Sequence[int], obs_dtype: Any, notes: list[str]) -> str:
    """The dtype policy of an agent's CNN torso for its ``precision`` setting (float32 when the
    observations are not images); a line in ``notes`` says when it is mixed_bfloat16, and why.
    ``auto`` keeps float32 for the small CNN, whose casts cost more than its bfloat16 math saves
    (DQN on a 15x15 board: 86.6 s in bfloat16 vs 77.5 s in float32 for 30,000 steps)."""
    from kerasdojo.networks import cnn_precision as resolve
    from kerasdojo.networks import is_image_space, uses_nature_cnn

    if not is_image_space(obs_shape, obs_dtype) or (setting == "auto" and not uses_nature_cnn(obs_shape, obs_dtype)):
        return "float32"
    policy, why = resolve(setting)
    if policy == "mixed_bfloat16":
        notes.append(
            f"CNN updates in mixed_bfloat16 (bfloat16 math, float32 weights; {why}); "
            "train with --set precision=float32 for float32 math"
        )
    return policy


def use_xla(jit_compile: bool, obs_shape: Sequence[int], obs_dtype: Any) -> bool:
    """``jit_compile``, except for CNNs where TensorFlow sees no GPU: XLA's CPU convolutions are
    about 40x slower than oneDNN's (a Nature-CNN PPO update on 1,024 frames: 64 s vs 1.6 s)."""
    from kerasdojo.networks import is_image_space

    if not jit_compile or not is_image_space(obs_shape, obs_dtype):
        return jit_compile
    return bool(backend.tf().config.list_physical_devices("GPU"))


def step_range(batches: Any, unroll: int = 4) -> Any:
    """The loop over the leading (gradient-step) axis of ``batches`` inside a compiled update:
    a Python range (unrolled in the graph) when that axis is static and at most ``unroll`` long,
    else ``tf.range``. With XLA on a CPU a ``tf.range`` loop costs ~2 ms of fixed overhead per
    call, more than one SAC gradient step on a 256x256 network; an unrolled step costs none."""
    k = batches.shape[0]
    if k is not None and k <= unroll:
        return range(k)
    return backend.tf().range(backend.tf().shape(batches)[0])
