"""Advantage Actor-Critic (Mnih et al. 2016), the synchronous variant of Stable-Baselines3.

Reads top to bottom: config, the optimizer, and the update. Each call collects
``n_steps`` steps from every env (networks, acting and GAE are shared with PPO,
:mod:`kerasdojo.agents.onpolicy`) and takes one gradient step on the whole
rollout: ``-A * log pi(a|s) + vf_coef * (R - V(s))^2 - ent_coef * H``, with the
global gradient norm clipped.

RMSprop as in SB3 (PyTorch's ``alpha=0.99, eps=1e-5``). Keras's RMSprop adds its
epsilon inside the square root (``g / sqrt(v + eps)``) where PyTorch adds it
outside (``g / (sqrt(v) + eps)``), so ``rms_prop_eps`` is passed squared: the two
agree where it matters, near ``v = 0``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.onpolicy import OnPolicyActorCritic, OnPolicyConfig, mask_weights, normalize_advantages
from kerasdojo.agents.rules import schedule
from kerasdojo.agents.speed import use_xla
from kerasdojo.config import option
from kerasdojo.observations import ObsSpec


@dataclasses.dataclass(frozen=True)
class A2CConfig(OnPolicyConfig):
    """A2C hyperparameters (names and defaults follow Stable-Baselines3)."""

    kind: ClassVar[str] = "a2c"

    n_envs: int = option(8, "Environments stepped in parallel (one vector env).", low=1)
    learning_rate: float = option(7e-4, "Learning rate.", low=0, low_open=True)
    n_steps: int = option(5, "Steps per env in each rollout (one gradient step per rollout).", low=1)
    gae_lambda: float = option(1.0, "GAE lambda (1: n-step returns, as classic A2C).", low=0, high=1)
    normalize_advantage: bool = option(False, "Standardise the advantages of each rollout.")
    use_rms_prop: bool = option(True, "RMSprop (SB3's default); false: Adam.")
    rms_prop_eps: float = option(
        1e-5, "RMSprop epsilon (PyTorch's convention, added to sqrt(v)).", low=0, low_open=True
    )
    rms_prop_alpha: float = option(0.99, "RMSprop decay of the squared-gradient average.", low=0, high=1)


class A2C(OnPolicyActorCritic):
    name = "a2c"
    Config = A2CConfig

    def __init__(self, cfg: A2CConfig, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        keras = backend.keras()
        self.cfg: A2CConfig = cfg
        if cfg.use_rms_prop:
            self.opt = keras.optimizers.RMSprop(
                learning_rate=cfg.learning_rate,
                rho=cfg.rms_prop_alpha,
                epsilon=cfg.rms_prop_eps**2,
                global_clipnorm=cfg.max_grad_norm,
            )
        else:
            self.opt = keras.optimizers.Adam(learning_rate=cfg.learning_rate, global_clipnorm=cfg.max_grad_norm)
        self.opt.build(self.train_vars)
        self._update = self.compiled_update(use_xla(cfg.jit_compile, self.obs_shape, self.obs_dtype))
        self.refresh()

    def optimizers(self) -> dict[str, Any]:
        return {"rmsprop" if self.cfg.use_rms_prop else "adam": self.opt}

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        buf, advantages, returns = self.collect(env)
        lr = schedule(cfg.lr_schedule, cfg.learning_rate, step / total_steps)
        flat = buf.flat(buf.obs, buf.actions, advantages, returns, buf.valid)
        flat[-1] = flat[-1].astype(np.float32)
        out, weights = self._update(np.float32(lr), *flat, buf.flat(buf.masks)[0])
        self.refresh(weights)
        stats = {k: float(v) for k, v in out.items()}
        self.n_updates += 1
        metrics = {f"train/{k}": v for k, v in stats.items()}
        metrics.update(self.rollout_metrics(buf, returns, lr))
        return cfg.n_steps * env.num_envs, metrics

    # ------------------------------------------------------------------ the update (compiled)
    def _update_step(
        self, obs: Any, actions: Any, advantages: Any, returns: Any, valid: Any, masks: Any = None
    ) -> dict[str, Any]:
        """One gradient step on the whole rollout; reset calls (not valid) carry no weight; ``masks``:
        the legal actions of each step, when the env gave them."""
        tf = backend.tf()
        cfg = self.cfg
        weight = mask_weights(valid)
        if cfg.normalize_advantage:
            advantages = normalize_advantages(advantages, weight)
        with tf.GradientTape() as tape:
            out, value = self.policy_value(obs)
            logp, entropy = self.log_prob_entropy(out, actions, masks)
            policy_loss = -tf.reduce_sum(weight * advantages * logp)
            value_loss = tf.reduce_sum(weight * (returns - value) ** 2)
            entropy_loss = -tf.reduce_sum(weight * entropy)
            loss = policy_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * value_loss
        self.opt.apply(tape.gradient(loss, self.train_vars), self.train_vars)  # global_clipnorm clips
        return {"policy_loss": policy_loss, "value_loss": value_loss, "entropy_loss": entropy_loss, "loss": loss}
