"""What a run is: the spec ``kerasdojo train`` was given, the agent config it resolves
to (defaults < preset < ``--config``/``--set`` < flags), the agent built from it, and
:func:`open_run`, which reads both back from a run directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kerasdojo import config as config_mod
from kerasdojo import envs as envs_mod
from kerasdojo.agents import get, presets
from kerasdojo.errors import DojoError
from kerasdojo.runs import Run


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """What ``kerasdojo train`` was asked for (the agent's hyperparameters come from overrides)."""

    env_id: str
    agent: str = "ppo"
    seed: int = 0
    total_steps: int | None = None
    n_envs: int | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    async_envs: bool = False
    eval_every: int = 10_000
    eval_episodes: int = 10
    save_every: int = 50_000
    video: bool = False
    native: bool = False  # train on the TensorFlow-native env, compiled end to end

    # Resolved into the agent's config, so not stored with the spec in config.json.
    IN_CONFIG = ("overrides", "total_steps", "n_envs")

    def check(self) -> None:
        if self.native:
            from kerasdojo.envs import native

            native.make(self.env_id)  # a DojoError naming the envs that have a twin
            get(self.agent).load(native=True)
            if self.env_kwargs or self.async_envs:
                raise DojoError("--native takes neither --env-kwargs nor --async: the native envs are fixed twins")
        for name in ("eval_every", "save_every"):
            if getattr(self, name) < 0:
                raise DojoError(f"--{name.replace('_', '-')} must be >= 0. Received: {getattr(self, name)}")
        if self.eval_episodes < 1:
            raise DojoError(f"--eval-episodes must be >= 1. Received: {self.eval_episodes}")
        for flag, value in (("--steps", self.total_steps), ("--n-envs", self.n_envs)):
            if value is not None and value < 1:
                raise DojoError(f"{flag} must be >= 1. Received: {value}")

    def stored(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.IN_CONFIG}

    @classmethod
    def from_stored(cls, data: dict[str, Any], source: str = "config.json") -> TrainSpec:
        """The spec ``config.json`` holds; a one-line DojoError naming a field of the wrong type."""
        fields = [f for f in dataclasses.fields(cls) if f.name not in cls.IN_CONFIG]
        # Fields added later (native) take their defaults in runs made before them.
        values = {f.name: data[f.name] for f in fields if f.name in data or f.default is dataclasses.MISSING}
        for f in fields:
            if f.name not in values:
                continue
            if f.name in ("env_id", "agent"):
                kind: type = str
            else:
                kind = type(f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
            value = values[f.name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise DojoError(f"{source} is damaged: {f.name} is {value!r}, not a {kind.__name__}")
        return cls(**values)


def resolve_config(
    agent: str, env_id: str, overrides: dict[str, Any], total_steps: int | None = None, n_envs: int | None = None
) -> Any:
    """defaults < preset for (agent, env) < --config / --set < --steps / --n-envs."""
    cls = get(agent).load().Config
    cfg = config_mod.apply(cls(), presets.preset(agent, env_id), source=f"the {agent} preset for {env_id}")
    cfg = config_mod.apply(cfg, overrides, source="--config/--set")
    flags = {k: v for k, v in (("total_steps", total_steps), ("n_envs", n_envs)) if v is not None}
    return config_mod.apply(cfg, flags, source="the command line")


def greedy_evaluation(spec: TrainSpec, cfg: Any) -> bool:
    """Whether a run is evaluated with greedy actions (sampled on Atari games, as RL Zoo)."""
    return spec.native or not envs_mod.samples_in_evaluation(spec.env_id, cfg.atari_wrapper)


def build_agent(agent: str, cfg: Any, env: Any, seed: int, native: bool = False, acting_only: bool = False) -> Any:
    """Agent ``agent`` for ``env`` (``native``: its trainer compiled end to end, for a native env;
    ``acting_only``: without what only training needs, as its ``acting_config`` says)."""
    cls = get(agent).load(native)
    if acting_only:
        cfg = cls.acting_config(cfg)
    return cls(cfg, env.obs_spec, env.single_action_space, seed)


def open_run(run_dir: str | Path) -> tuple[Run, TrainSpec, Any]:
    """An RL run directory, its spec and its agent config."""
    run = Run.open(run_dir)
    config = run.config
    if config.get("kind") != "rl":
        raise DojoError(f"{run_dir} is not an RL training run (it is a {config.get('task', 'different')} run)")
    try:
        spec = TrainSpec.from_stored(config, str(run.path / Run.CONFIG))
        cls = get(spec.agent).load().Config
        if not isinstance(config["config"], dict):
            raise DojoError(f"{run.path / Run.CONFIG} is damaged: its config is {config['config']!r}, not an object")
        saved = dict(config["config"])
        saved.setdefault("precision", "float32")  # runs made before the setting computed in float32
        cfg = config_mod.from_dict(cls, saved, source=f"{run.path / Run.CONFIG}")
    except KeyError as exc:
        raise DojoError(f"{run.path / Run.CONFIG} lacks {exc}: not a complete kerasdojo run config") from None
    return run, spec, cfg
