"""Soft Actor-Critic (Haarnoja et al. 2018), Stable-Baselines3's variant.

Reads top to bottom: config, networks, acting, and the update. A squashed
Gaussian actor (``a = tanh(u)``, ``u ~ N(mu(s), sigma(s))``, with the change of
variables in the log-probability), twin Q critics with Polyak-averaged targets,
and an entropy coefficient tuned automatically towards a target entropy of
``-|A|`` (or fixed). Collection, the replay buffer and action scaling are shared
with TD3 (:mod:`kerasdojo.agents.offpolicy_ac`).

One gradient step: the critics regress on
``r + gamma * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s'))``
with ``a' ~ pi(.|s')``; the actor minimises ``alpha * log pi(a|s) - min_i Q_i(s, a)``
with a fresh ``a ~ pi(.|s)``; the coefficient minimises
``-log(alpha) * (log pi(a|s) + target_entropy)``; the targets move by ``tau``.
All ``gradient_steps`` steps of one call run in one compiled TensorFlow function.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend, networks
from kerasdojo.agents.acting import Forward
from kerasdojo.agents.offpolicy_ac import OffPolicyActorCritic, OffPolicyConfig
from kerasdojo.agents.speed import Direct, compiled, repeat, static_steps
from kerasdojo.agents.squashed import SquashedDiagGaussian
from kerasdojo.config import option
from kerasdojo.encoders import extend
from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec


@dataclasses.dataclass(frozen=True)
class SACConfig(OffPolicyConfig):
    """SAC hyperparameters (names and defaults follow Stable-Baselines3)."""

    kind: ClassVar[str] = "sac"

    ent_coef: str = option(
        "auto", "Entropy coefficient: auto (tuned, starting at 1), auto_<start> such as auto_0.1, or a fixed number."
    )
    target_entropy: str = option("auto", "Entropy the tuning aims at: auto (-|A|) or a number.")
    target_update_interval: int = option(1, "Gradient steps between target network updates.", low=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.entropy_start()
        if self.target_entropy != "auto":
            _number("target_entropy", self.target_entropy)

    def entropy_start(self) -> tuple[float, bool]:
        """(initial coefficient, whether it is tuned)."""
        if self.ent_coef == "auto":
            return 1.0, True
        if self.ent_coef.startswith("auto_"):
            value, tuned = _number("ent_coef", self.ent_coef[5:]), True
        else:
            value, tuned = _number("ent_coef", self.ent_coef), False
        if value <= 0:
            raise DojoError(f"Invalid value for ent_coef: must be > 0. Received: ent_coef={self.ent_coef!r}")
        return value, tuned


def _number(key: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise DojoError(
            f"Invalid value for {key}: expected auto, auto_<number> or a number. Received: {key}={raw!r}"
        ) from None


class SAC(OffPolicyActorCritic):
    name = "sac"
    Config = SACConfig

    def __init__(self, cfg: SACConfig, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        keras = backend.keras()
        self.cfg: SACConfig = cfg
        A = self.action_dim
        self.dist = SquashedDiagGaussian(A)  # log-std clipped to SB3's [-20, 2]
        self.actor = self.build_actor(lambda: networks.squashed_gaussian_head(A, cfg.init), "actor")
        self.build_critics(2)
        start, self.tune_entropy = cfg.entropy_start()
        self.log_ent_coef = keras.Variable(np.float32(math.log(start)), name="log_ent_coef", trainable=True)
        self.target_entropy = float(-A if cfg.target_entropy == "auto" else float(cfg.target_entropy))
        self.actor_opt = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
        self.ent_opt = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
        self.actor_opt.build(self.actor.trainable_variables)
        self.ent_opt.build([self.log_ent_coef])
        # What a user keeps: observations -> tanh(mean) mapped to the bounds (deterministic actions).
        mean_only = np.concatenate([np.eye(A), np.zeros((A, A))], axis=0)
        tanh_mean = networks.fixed_linear(mean_only, None, "tanh", "tanh_mean")
        self.policy = extend(self.actor, [tanh_mean, networks.to_bounds(self.low, self.high)], "policy")
        self.forward = Forward([self.actor], fast=cfg.fast_act)
        self._train = Direct(compiled(self._train_steps, cfg.jit_compile))

    # ------------------------------------------------------------------ persistence
    def networks(self) -> dict[str, Any]:
        return {"actor": self.actor, "critics": self.critics, "critics_target": self.critic_targets}

    def optimizers(self) -> dict[str, Any]:
        return {"actor": self.actor_opt, "critic": self.critic_opt, "ent_coef": self.ent_opt}

    def variables(self) -> dict[str, Any]:
        return {"log_ent_coef": self.log_ent_coef}

    def policy_model(self) -> Any:
        return self.policy

    # ------------------------------------------------------------------ acting (NumPy)
    def actions_from(self, out: np.ndarray, deterministic: bool) -> np.ndarray:
        mean, log_std = out[:, : self.action_dim], out[:, self.action_dim :]
        if deterministic:
            return self.dist.np_mode(mean)
        return self.dist.np_sample(mean, log_std, self.rng)[0]

    # ------------------------------------------------------------------ the update (compiled)
    def _sample(self, obs: Any) -> tuple[Any, Any]:
        """A reparameterised action of the actor for ``obs`` and its log-probability."""
        out = self.actor(obs, training=True)
        return self.dist.tf_sample(out[:, : self.action_dim], out[:, self.action_dim :], self.tf_rng)

    def _train_steps(
        self, obs: Any, actions: Any, rewards: Any, next_obs: Any, terminated: Any, n_updates: Any, act_obs: Any
    ) -> tuple[dict[str, Any], Any]:
        """``k`` gradient steps on ``k`` minibatches (arrays shaped (k, batch, ...)); then the
        actor's output for ``act_obs``, the observations the next action is for."""
        tf = backend.tf()
        cfg = self.cfg
        actor_vars = self.actor.trainable_variables
        names = ("actor_loss", "critic_loss", "ent_coef", "ent_coef_loss")
        k = static_steps(obs)

        def step(i: Any, sums: tuple[Any, ...]) -> tuple[Any, ...]:
            o, o2 = tf.nest.map_structure(lambda x: x[i], (obs, next_obs))  # nested: leaf by leaf
            a, r, d = actions[i], rewards[i], terminated[i]
            ent_coef = tf.exp(self.log_ent_coef)  # this step's value, before its own update
            # Critics: soft Bellman targets from the target critics and a fresh next action.
            next_a, next_logp = self._sample(o2)
            q_next = self.min_q(self.critic_targets, o2, next_a) - ent_coef * next_logp
            target = tf.stop_gradient(r + cfg.gamma * (1.0 - d) * q_next)
            with tf.GradientTape() as tape:
                critic_loss = 0.5 * tf.reduce_sum(tf.reduce_mean((self.q(self.critics, o, a) - target) ** 2, axis=1))
            self.critic_opt.apply(tape.gradient(critic_loss, self.critic_vars), self.critic_vars)
            # Actor: maximise the soft value of its own (reparameterised) action.
            with tf.GradientTape() as tape:
                a_pi, logp = self._sample(o)
                q_pi = self.min_q(self.critics, o, a_pi)
                actor_loss = tf.reduce_mean(ent_coef * logp - q_pi)
            self.actor_opt.apply(tape.gradient(actor_loss, actor_vars), actor_vars)
            # Entropy coefficient: towards the target entropy.
            ent_coef_loss = -tf.reduce_mean(self.log_ent_coef * tf.stop_gradient(logp + self.target_entropy))
            if self.tune_entropy:
                self.ent_opt.apply([-tf.reduce_mean(tf.stop_gradient(logp + self.target_entropy))], [self.log_ent_coef])
            due = (n_updates + tf.cast(i, tf.int64) + 1) % cfg.target_update_interval == 0
            self.update_critic_targets(where=due)
            return tuple(a + b for a, b in zip(sums, (actor_loss, critic_loss, ent_coef, ent_coef_loss), strict=True))

        sums = dict(zip(names, repeat(k, step, tuple(tf.constant(0.0) for _ in names)), strict=True))
        count = tf.cast(tf.maximum(k, 1), tf.float32)
        return {key: value / count for key, value in sums.items()}, self.actor(act_obs, training=False)
