"""Proximal Policy Optimization (Schulman et al. 2017), clipped-surrogate variant.

Reads top to bottom: config, the optimizer, and the update; networks, acting
and rollout collection with GAE are shared with A2C
(:mod:`kerasdojo.agents.actor_critic`).

Speed: acting is one NumPy forward pass per vector step, and the whole update
(all epochs and minibatches, with approx-KL early stopping) is one compiled
TensorFlow call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.actor_critic import ActorCritic, ActorCriticConfig
from kerasdojo.agents.base import compiled, schedule
from kerasdojo.config import option


@dataclasses.dataclass(frozen=True)
class PPOConfig(ActorCriticConfig):
    """PPO hyperparameters (names follow Stable-Baselines3)."""

    kind: ClassVar[str] = "ppo"

    n_envs: int = option(4, "Environments stepped in parallel (one vector env).", low=1)
    learning_rate: float = option(3e-4, "Adam learning rate.", low=0, low_open=True)
    batch_size: int = option(64, "Minibatch size (a partial last minibatch is dropped).", low=1)
    n_epochs: int = option(10, "Passes over each rollout.", low=1)
    clip_range: float = option(0.2, "Clip the probability ratio to [1 - c, 1 + c].", low=0, low_open=True)
    clip_schedule: str = option(
        "constant", "constant, or linear decay of clip_range to 0.", choices=("constant", "linear")
    )
    clip_range_vf: float = option(0.0, "Clip value updates around the old values (0: off).", low=0)
    target_kl: float = option(0.0, "Stop the epochs early when approx KL > 1.5 * target_kl (0: off).", low=0)
    adam_eps: float = option(1e-5, "Adam epsilon.", low=0, low_open=True)


class PPO(ActorCritic):
    name = "ppo"
    Config = PPOConfig

    def __init__(
        self, cfg: PPOConfig, obs_shape: tuple[int, ...], obs_dtype: Any, action_space: Any, seed: int
    ) -> None:
        super().__init__(cfg, obs_shape, obs_dtype, action_space, seed)
        keras = backend.keras()
        self.cfg: PPOConfig = cfg
        self.opt = keras.optimizers.Adam(
            learning_rate=cfg.learning_rate, epsilon=cfg.adam_eps, global_clipnorm=cfg.max_grad_norm
        )
        self.opt.build(self.train_vars)
        self._update = compiled(self._update_step, cfg.jit_compile)
        self.refresh()

    def optimizers(self) -> dict[str, Any]:
        return {"adam": self.opt}

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        progress = step / total_steps
        buf, advantages, returns = self.collect(env)
        lr = schedule(cfg.lr_schedule, cfg.learning_rate, progress)
        clip = schedule(cfg.clip_schedule, cfg.clip_range, progress)
        self.opt.learning_rate.assign(lr)
        flat = buf.flat(buf.obs, buf.actions, buf.log_probs, advantages, returns, buf.values, buf.valid)
        flat[-1] = flat[-1].astype(np.float32)
        stats = {k: float(v) for k, v in self._update(*flat, np.float32(clip)).items()}
        self.refresh()
        n_grad = int(stats.pop("gradient_steps"))
        self.n_updates += n_grad
        metrics = {f"train/{k}": v for k, v in stats.items()}
        metrics.update(self.rollout_metrics(buf, returns, lr))
        metrics["train/clip_range"] = clip
        return cfg.n_steps * env.num_envs, metrics

    # ------------------------------------------------------------------ the update (compiled)
    def _update_step(
        self,
        obs: Any,
        actions: Any,
        old_logp: Any,
        advantages: Any,
        returns: Any,
        old_values: Any,
        mask: Any,
        clip: Any,
    ) -> dict[str, Any]:
        """All epochs and minibatches of one PPO update, in one compiled call."""
        tf = backend.tf()
        cfg = self.cfg
        n = obs.shape[0]
        bs = min(cfg.batch_size, n)
        n_mb = n // bs
        total = cfg.n_epochs * n_mb
        # One random permutation per epoch, cut into minibatches.
        perms = tf.argsort(self.tf_rng.uniform([cfg.n_epochs, n]), axis=1)[:, : n_mb * bs]
        batches = tf.reshape(perms, [total, bs])
        zero = tf.constant(0.0)
        sums = {
            "policy_gradient_loss": zero,
            "value_loss": zero,
            "entropy_loss": zero,
            "approx_kl": zero,
            "clip_fraction": zero,
            "loss": zero,
        }
        done = tf.constant(0)
        for i in tf.range(total):
            idx = batches[i]
            o, a = tf.gather(obs, idx), tf.gather(actions, idx)
            olp, adv = tf.gather(old_logp, idx), tf.gather(advantages, idx)
            ret, ov, m = tf.gather(returns, idx), tf.gather(old_values, idx), tf.gather(mask, idx)
            weight = m / tf.maximum(tf.reduce_sum(m), 1.0)
            if cfg.normalize_advantage:
                mean = tf.reduce_sum(weight * adv)
                std = tf.sqrt(tf.reduce_sum(weight * (adv - mean) ** 2))
                adv = (adv - mean) / (std + 1e-8)
            with tf.GradientTape() as tape:
                out = self.pi(o, training=True)
                value = self.vf(o, training=True)[:, 0]
                logp, entropy = self.log_prob_entropy(out, a)
                log_ratio = logp - olp
                ratio = tf.exp(log_ratio)
                surrogate = tf.minimum(ratio * adv, tf.clip_by_value(ratio, 1.0 - clip, 1.0 + clip) * adv)
                pg_loss = -tf.reduce_sum(weight * surrogate)
                if cfg.clip_range_vf > 0:
                    value = ov + tf.clip_by_value(value - ov, -cfg.clip_range_vf, cfg.clip_range_vf)
                value_loss = tf.reduce_sum(weight * (ret - value) ** 2)
                entropy_loss = -tf.reduce_sum(weight * entropy)
                loss = pg_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * value_loss
            approx_kl = tf.reduce_sum(weight * ((ratio - 1.0) - log_ratio))
            if cfg.target_kl > 0 and approx_kl > 1.5 * cfg.target_kl:
                break
            self.opt.apply(tape.gradient(loss, self.train_vars), self.train_vars)  # global_clipnorm clips
            clip_fraction = tf.reduce_sum(weight * tf.cast(tf.abs(ratio - 1.0) > clip, tf.float32))
            sums = {
                "policy_gradient_loss": sums["policy_gradient_loss"] + pg_loss,
                "value_loss": sums["value_loss"] + value_loss,
                "entropy_loss": sums["entropy_loss"] + entropy_loss,
                "approx_kl": sums["approx_kl"] + approx_kl,
                "clip_fraction": sums["clip_fraction"] + clip_fraction,
                "loss": sums["loss"] + loss,
            }
            done += 1
        count = tf.maximum(tf.cast(done, tf.float32), 1.0)
        out = {k: v / count for k, v in sums.items()}
        out["gradient_steps"] = tf.cast(done, tf.float32)
        return out
