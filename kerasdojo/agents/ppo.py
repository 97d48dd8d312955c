"""Proximal Policy Optimization (Schulman et al. 2017), clipped-surrogate variant.

Reads top to bottom: config, the optimizer, and the update; networks, acting
and rollout collection with GAE are shared with A2C
(:mod:`kerasdojo.agents.onpolicy`).

Speed: acting is one NumPy forward pass per vector step, and the whole update
(all epochs and minibatches, with approx-KL early stopping) is one compiled
TensorFlow call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.onpolicy import (
    OnPolicyActorCritic,
    OnPolicyConfig,
    mask_weights,
    normalize_advantages,
    row_sum,
)
from kerasdojo.agents.rules import schedule
from kerasdojo.agents.speed import repeat, use_xla
from kerasdojo.config import option
from kerasdojo.observations import ObsSpec


@dataclasses.dataclass(frozen=True)
class PPOConfig(OnPolicyConfig):
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


class PPO(OnPolicyActorCritic):
    name = "ppo"
    Config = PPOConfig

    def __init__(self, cfg: PPOConfig, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        keras = backend.keras()
        self.cfg: PPOConfig = cfg
        self.opt = keras.optimizers.Adam(
            learning_rate=cfg.learning_rate, epsilon=cfg.adam_eps, global_clipnorm=cfg.max_grad_norm
        )
        self.opt.build(self.train_vars)
        self._update = self.compiled_update(use_xla(cfg.jit_compile, self.obs_shape, self.obs_dtype))
        self.refresh()

    def optimizers(self) -> dict[str, Any]:
        return {"adam": self.opt}

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        progress = step / total_steps
        buf, advantages, returns = self.collect(env)
        lr = schedule(cfg.lr_schedule, cfg.learning_rate, progress)
        clip = schedule(cfg.clip_schedule, cfg.clip_range, progress)
        flat = buf.flat(buf.obs, buf.actions, buf.log_probs, advantages, returns, buf.values, buf.valid)
        flat[-1] = flat[-1].astype(np.float32)
        masks = buf.flat(buf.masks)[0]
        out, weights = self._update(np.float32(lr), *flat, np.float32(clip), masks)
        self.refresh(weights)
        stats = {k: float(v) for k, v in out.items()}
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
        valid: Any,
        clip: Any,
        masks: Any = None,
    ) -> dict[str, Any]:
        """All epochs and minibatches of one PPO update, in one compiled call (no autograph needed);
        ``masks``: the legal actions of each step, when the env gave them."""
        tf = backend.tf()
        cfg = self.cfg
        n = tf.nest.flatten(obs)[0].shape[0]
        bs = min(cfg.batch_size, n)
        n_mb = n // bs
        total = cfg.n_epochs * n_mb
        # One random permutation per epoch, cut into minibatches; none when every minibatch is the
        # whole rollout (the order of its rows changes none of the loss's means).
        batches = None
        if bs < n:
            perms = tf.argsort(self.tf_rng.uniform([cfg.n_epochs, n]), axis=1)[:, : n_mb * bs]
            batches = tf.reshape(perms, [total, bs])

        def minibatch(i: Any) -> tuple[Any, Any, tuple[Any, ...]]:
            """Gradients and statistics of minibatch ``i``."""
            rows = (obs, actions, masks, old_logp, advantages, returns, old_values, valid)
            if batches is not None:
                idx = batches[i]
                rows = tf.nest.map_structure(lambda x: None if x is None else tf.gather(x, idx), rows)
            o, a, legal, olp, adv, ret, ov, m = rows
            weight, adv = minibatch_weights(cfg, adv, m)
            with tf.GradientTape() as tape:
                out, value = self.policy_value(o)
                logp, entropy = self.log_prob_entropy(out, a, legal)
                loss, parts = clipped_loss(cfg, logp, entropy, olp, adv, ret, value, ov, weight, clip)
            approx_kl, stats = loss_statistics(weight, clip, parts)
            return tape.gradient(loss, self.train_vars), approx_kl, stats

        return run_epochs(total, minibatch, self.opt, self.train_vars, cfg.target_kl)


# --------------------------------------------------------------------------- PPO's rules (compiled code)
LOSS_NAMES = ("policy_gradient_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction", "loss")


def minibatch_weights(cfg: PPOConfig, advantages: Any, valid: Any) -> tuple[Any, Any]:
    """Per-transition weights of a mean over the ``valid`` ones, and the advantages (standardised
    within the minibatch when ``normalize_advantage``): what :func:`clipped_loss` takes."""
    weight = mask_weights(valid)
    return weight, normalize_advantages(advantages, weight) if cfg.normalize_advantage else advantages


def clipped_loss(
    cfg: PPOConfig,
    logp: Any,
    entropy: Any,
    old_logp: Any,
    advantages: Any,
    returns: Any,
    value: Any,
    old_values: Any,
    weight: Any,
    clip: Any,
) -> tuple[Any, tuple[Any, ...]]:
    """PPO's loss of a minibatch (clipped surrogate, optionally clipped value loss, entropy bonus),
    weighted means; returns the loss and what :func:`loss_statistics` needs."""
    tf = backend.tf()
    log_ratio = logp - old_logp
    ratio = tf.exp(log_ratio)
    surrogate = tf.minimum(ratio * advantages, tf.clip_by_value(ratio, 1.0 - clip, 1.0 + clip) * advantages)
    pg_loss = -row_sum(weight * surrogate)
    if cfg.clip_range_vf > 0:
        value = old_values + tf.clip_by_value(value - old_values, -cfg.clip_range_vf, cfg.clip_range_vf)
    value_loss = row_sum(weight * (returns - value) ** 2)
    entropy_loss = -row_sum(weight * entropy)
    loss = pg_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * value_loss
    return loss, (ratio, log_ratio, pg_loss, value_loss, entropy_loss, loss)


def loss_statistics(weight: Any, clip: Any, parts: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """Approx KL and the :data:`LOSS_NAMES` statistics of a minibatch, from :func:`clipped_loss`'s parts
    (computed after the gradient tape, as they feed no gradient)."""
    tf = backend.tf()
    ratio, log_ratio, pg_loss, value_loss, entropy_loss, loss = parts
    approx_kl = row_sum(weight * ((ratio - 1.0) - log_ratio))
    clip_fraction = row_sum(weight * tf.cast(tf.abs(ratio - 1.0) > clip, tf.float32))
    return approx_kl, (pg_loss, value_loss, entropy_loss, approx_kl, clip_fraction, loss)


def run_epochs(total: int, minibatch: Any, opt: Any, train_vars: list[Any], target_kl: float) -> dict[str, Any]:
    """Apply ``minibatch(i) -> (gradients, approx KL, statistics)`` for i in 0..total-1 and return the
    mean statistics and the gradient steps taken. With ``target_kl``, the epochs stop before the
    first minibatch whose approx KL exceeds 1.5 * target_kl, as SB3."""
    tf = backend.tf()

    def body(i: Any, carry: tuple[Any, ...]) -> tuple[Any, ...]:
        done, stop, sums = carry
        grads, approx_kl, stats = minibatch(i)
        if target_kl <= 0:
            opt.apply(grads, train_vars)  # global_clipnorm clips
            return done + 1, stop, tuple(a + b for a, b in zip(sums, stats, strict=True))
        exceeded = approx_kl > 1.5 * target_kl

        def apply() -> tuple[Any, ...]:
            opt.apply(grads, train_vars)
            return tuple(a + b for a, b in zip(sums, stats, strict=True))

        sums = tf.cond(exceeded, lambda: sums, apply)
        return done + tf.cast(~exceeded, tf.int32), exceeded, sums

    start = (tf.constant(0), tf.constant(False), tuple(tf.constant(0.0) for _ in LOSS_NAMES))
    until = (lambda carry: carry[1]) if target_kl > 0 else None
    done, _, sums = repeat(total, body, start, until)
    count = tf.maximum(tf.cast(done, tf.float32), 1.0)
    out = {k: v / count for k, v in zip(LOSS_NAMES, sums, strict=True)}
    out["gradient_steps"] = tf.cast(done, tf.float32)
    return out
