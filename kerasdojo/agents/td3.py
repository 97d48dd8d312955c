"""Twin Delayed DDPG (Fujimoto et al. 2018), and DDPG (Lillicrap et al. 2016) as its special case.

Reads top to bottom: config, networks, acting with exploration noise, and the
update. A deterministic actor (tanh, in [-1, 1]) with a target copy, twin Q
critics with targets, target policy smoothing (clipped Gaussian noise on the
target action) and delayed actor and target updates (every ``policy_delay``
critic updates). DDPG is the same with one critic, no delay and no smoothing,
as Stable-Baselines3 defines it. Collection, the replay buffer and action
scaling are shared with SAC (:mod:`kerasdojo.agents.offpolicy_ac`).

Exploration noise is added to the [-1, 1] action and clipped: Gaussian, or
Ornstein-Uhlenbeck (one process per env, reset when its episode ends).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend, networks
from kerasdojo.agents.acting import Forward
from kerasdojo.agents.offpolicy_ac import OffPolicyActorCritic, OffPolicyConfig
from kerasdojo.agents.rules import ou_step, polyak
from kerasdojo.agents.speed import Direct, compiled, repeat, static_steps
from kerasdojo.config import option
from kerasdojo.encoders import extend
from kerasdojo.observations import ObsSpec


@dataclasses.dataclass(frozen=True)
class TD3Config(OffPolicyConfig):
    """TD3 hyperparameters (names and defaults follow Stable-Baselines3)."""

    kind: ClassVar[str] = "td3"

    net_arch: tuple[int, ...] = option((400, 300), "Hidden layer widths of the actor and of each critic.", low=1)
    learning_rate: float = option(1e-3, "Adam learning rate (actor and critics).", low=0, low_open=True)
    n_critics: int = option(2, "Q critics; targets use their minimum (1: DDPG).", low=1)
    policy_delay: int = option(2, "Critic updates per actor and target update.", low=1)
    target_policy_noise: float = option(0.2, "Std of the smoothing noise on target actions (0: none).", low=0)
    target_noise_clip: float = option(0.5, "Clip the smoothing noise to [-c, c].", low=0)
    noise_type: str = option(
        "normal", "Exploration noise on the actor's action.", choices=("normal", "ornstein-uhlenbeck", "none")
    )
    noise_std: float = option(0.1, "Exploration noise std, in units of the half action range.", low=0)
    ou_theta: float = option(0.15, "Ornstein-Uhlenbeck mean reversion rate.", low=0)
    ou_dt: float = option(1e-2, "Ornstein-Uhlenbeck time step.", low=0, low_open=True)


@dataclasses.dataclass(frozen=True)
class DDPGConfig(TD3Config):
    """DDPG: TD3 with one critic, no delay and no target smoothing (SB3's definition)."""

    kind: ClassVar[str] = "ddpg"

    n_critics: int = option(1, "Q critics; targets use their minimum (1: DDPG).", low=1)
    policy_delay: int = option(1, "Critic updates per actor and target update.", low=1)
    target_policy_noise: float = option(0.0, "Std of the smoothing noise on target actions (0: none).", low=0)
    target_noise_clip: float = option(0.0, "Clip the smoothing noise to [-c, c].", low=0)


class TD3(OffPolicyActorCritic):
    name = "td3"
    Config = TD3Config

    def __init__(self, cfg: TD3Config, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        keras = backend.keras()
        self.cfg: TD3Config = cfg

        def actor(name: str) -> Any:
            return self.build_actor(lambda: networks.deterministic_head(self.action_dim, cfg.init), name)

        self.actor = actor("actor")
        self.actor_target = actor("actor_target")
        self.actor_target.set_weights(self.actor.get_weights())
        self.build_critics(cfg.n_critics)
        self.actor_opt = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
        self.actor_opt.build(self.actor.trainable_variables)
        # What a user keeps: observations -> actions mapped to the bounds.
        self.policy = extend(self.actor, [networks.to_bounds(self.low, self.high)], "policy")
        self.forward = Forward([self.actor], fast=cfg.fast_act)
        self.ou_state: np.ndarray | None = None
        self._train = Direct(compiled(self._train_steps, cfg.jit_compile))

    # ------------------------------------------------------------------ persistence
    def networks(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "actor_target": self.actor_target,
            "critics": self.critics,
            "critics_target": self.critic_targets,
        }

    def optimizers(self) -> dict[str, Any]:
        return {"actor": self.actor_opt, "critic": self.critic_opt}

    def policy_model(self) -> Any:
        return self.policy

    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = super().extra_state(buffers)
        if self.ou_state is not None:
            arrays["noise/ou"] = self.ou_state
        return arrays, meta

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().load_extra_state(arrays, meta)
        if "noise/ou" in arrays:
            self.ou_state = np.array(arrays["noise/ou"], np.float32)

    # ------------------------------------------------------------------ acting (NumPy)
    def actions_from(self, out: np.ndarray, deterministic: bool) -> np.ndarray:
        if deterministic or self.cfg.noise_type == "none":
            return out
        return np.clip(out + self.noise(len(out)), -1.0, 1.0)

    def noise(self, n: int) -> np.ndarray:
        cfg = self.cfg
        white = self.rng.standard_normal((n, self.action_dim), dtype=np.float32)
        if cfg.noise_type == "normal":
            return cfg.noise_std * white
        if self.ou_state is None or len(self.ou_state) != n:
            self.ou_state = np.zeros((n, self.action_dim), np.float32)
        x = ou_step(self.ou_state, white, cfg.ou_theta, cfg.ou_dt, cfg.noise_std, sqrt=np.sqrt)
        self.ou_state = x.astype(np.float32)
        return self.ou_state

    def on_done(self, done: np.ndarray) -> None:
        if self.ou_state is not None and len(self.ou_state) == len(done):
            self.ou_state[done] = 0.0

    # ------------------------------------------------------------------ the update (compiled)
    def target_actions(self, next_obs: Any) -> Any:
        """Target policy smoothing: ``clip(mu'(s') + clip(N(0, sigma), -c, c), -1, 1)``."""
        tf = backend.tf()
        cfg = self.cfg
        mu = self.actor_target(next_obs, training=True)
        if cfg.target_policy_noise <= 0:
            return mu
        noise = tf.clip_by_value(
            cfg.target_policy_noise * self.tf_rng.normal(tf.shape(mu)), -cfg.target_noise_clip, cfg.target_noise_clip
        )
        return tf.clip_by_value(mu + noise, -1.0, 1.0)

    def td_target(self, rewards: Any, terminated: Any, next_obs: Any, next_actions: Any) -> Any:
        """``r + gamma * (1 - terminated) * min_i Q'_i(s', a')``."""
        tf = backend.tf()
        q_next = self.min_q(self.critic_targets, next_obs, next_actions)
        return tf.stop_gradient(rewards + self.cfg.gamma * (1.0 - terminated) * q_next)

    def _train_steps(
        self, obs: Any, actions: Any, rewards: Any, next_obs: Any, terminated: Any, n_updates: Any, act_obs: Any
    ) -> tuple[dict[str, Any], Any]:
        """``k`` gradient steps on ``k`` minibatches (arrays shaped (k, batch, ...)); then the
        actor's output for ``act_obs``, the observations the next action is for."""
        tf = backend.tf()
        cfg = self.cfg
        actor_vars = self.actor.trainable_variables
        k = static_steps(obs)

        def step(i: Any, sums: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
            critic_sum, actor_sum, actor_count = sums
            o, o2 = tf.nest.map_structure(lambda x: x[i], (obs, next_obs))  # nested: leaf by leaf
            a, r, d = actions[i], rewards[i], terminated[i]
            target = self.td_target(r, d, o2, self.target_actions(o2))
            with tf.GradientTape() as tape:
                critic_loss = tf.reduce_sum(tf.reduce_mean((self.q(self.critics, o, a) - target) ** 2, axis=1))
            self.critic_opt.apply(tape.gradient(critic_loss, self.critic_vars), self.critic_vars)

            def delayed() -> tuple[Any, Any]:
                """The actor's step and the target updates, every ``policy_delay`` critic steps."""
                with tf.GradientTape() as tape:
                    actor_loss = -tf.reduce_mean(self.q(self.critics, o, self.actor(o, training=True), members=1))
                self.actor_opt.apply(tape.gradient(actor_loss, actor_vars), actor_vars)
                self.update_critic_targets()
                polyak(self.actor_target.weights, self.actor.weights, cfg.tau)
                return actor_sum + actor_loss, actor_count + 1.0

            due = (n_updates + tf.cast(i, tf.int64) + 1) % cfg.policy_delay == 0
            actor_sum, actor_count = tf.cond(due, delayed, lambda: (actor_sum, actor_count))
            return critic_sum + critic_loss, actor_sum, actor_count

        critic_sum, actor_sum, actor_count = repeat(k, step, (tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)))
        out = {"critic_loss": critic_sum / tf.cast(tf.maximum(k, 1), tf.float32)}
        out["actor_loss"] = tf.where(actor_count > 0, actor_sum / tf.maximum(actor_count, 1.0), float("nan"))
        return out, self.actor(act_obs, training=False)


class DDPG(TD3):
    name = "ddpg"
    Config = DDPGConfig
