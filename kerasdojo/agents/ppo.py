"""Proximal Policy Optimization (Schulman et al. 2017), clipped-surrogate variant.

Reads top to bottom: config, networks, acting, rollout collection with GAE,
and the update. Separate policy and value MLPs (SB3's default), categorical
policy for Discrete actions, Gaussian with a state-independent log-std for Box
actions (sampled unclipped, clipped to the bounds by the env wrapper).

Speed: acting is one NumPy forward pass per vector step (see
:class:`~kerasdojo.agents.base.Forward`), and the whole update (all epochs and
minibatches, with approx-KL early stopping) is one compiled TensorFlow call.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend, networks
from kerasdojo.agents.base import Agent, AgentConfig, Forward, compiled, schedule
from kerasdojo.agents.buffers import RolloutBuffer, compute_gae
from kerasdojo.config import option

LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class PPOConfig(AgentConfig):
    """PPO hyperparameters (names follow Stable-Baselines3)."""

    kind: ClassVar[str] = "ppo"

    n_envs: int = option(4, "Environments stepped in parallel (one vector env).", low=1)
    learning_rate: float = option(3e-4, "Adam learning rate.", low=0, low_open=True)
    lr_schedule: str = option(
        "constant", "constant, or linear decay to 0 over training.", choices=("constant", "linear")
    )
    n_steps: int = option(512, "Steps per env in each rollout (rollout size = n_steps * n_envs).", low=1)
    batch_size: int = option(64, "Minibatch size (a partial last minibatch is dropped).", low=1)
    n_epochs: int = option(10, "Passes over each rollout.", low=1)
    gamma: float = option(0.99, "Discount factor.", low=0, high=1)
    gae_lambda: float = option(0.95, "GAE lambda (1: Monte Carlo returns, 0: one-step TD).", low=0, high=1)
    clip_range: float = option(0.2, "Clip the probability ratio to [1 - c, 1 + c].", low=0, low_open=True)
    clip_schedule: str = option(
        "constant", "constant, or linear decay of clip_range to 0.", choices=("constant", "linear")
    )
    clip_range_vf: float = option(0.0, "Clip value updates around the old values (0: off).", low=0)
    normalize_advantage: bool = option(True, "Standardise advantages within each minibatch.")
    ent_coef: float = option(0.0, "Entropy bonus coefficient.", low=0)
    vf_coef: float = option(0.5, "Value loss coefficient.", low=0)
    max_grad_norm: float = option(0.5, "Clip the global gradient norm.", low=0, low_open=True)
    target_kl: float = option(0.0, "Stop the epochs early when approx KL > 1.5 * target_kl (0: off).", low=0)
    log_std_init: float = option(0.0, "Initial log standard deviation of Gaussian policies.")
    ortho_init: bool = option(True, "Orthogonal initialisation (gains sqrt(2), 0.01 policy, 1 value).")
    adam_eps: float = option(1e-5, "Adam epsilon.", low=0, low_open=True)


class PPO(Agent):
    name = "ppo"
    Config = PPOConfig

    def __init__(
        self, cfg: PPOConfig, obs_shape: tuple[int, ...], obs_dtype: Any, action_space: Any, seed: int
    ) -> None:
        from gymnasium import spaces

        super().__init__(cfg, obs_shape, obs_dtype, action_space, seed)
        keras = backend.keras()
        self.cfg: PPOConfig = cfg
        self.discrete = isinstance(action_space, spaces.Discrete)
        init = "orthogonal" if cfg.ortho_init else "glorot_uniform"

        def torso() -> list[Any]:
            return networks.torso_layers(obs_shape, obs_dtype, cfg.net_arch, cfg.activation, init, math.sqrt(2))

        if self.discrete:
            self.n_actions = int(action_space.n)
            head = networks.categorical_head(self.n_actions)
            self.log_std = None
            self.action_shape: tuple[int, ...] = ()
        else:
            self.action_shape = tuple(action_space.shape)
            head, self.log_std = networks.gaussian_head(int(np.prod(self.action_shape)), cfg.log_std_init)
        self.pi = networks.build(obs_shape, torso() + head, "policy")
        self.vf = networks.build(obs_shape, torso() + networks.value_head(1.0), "value")
        self.train_vars = [*self.pi.trainable_variables, *self.vf.trainable_variables]
        if self.log_std is not None:
            self.train_vars.append(self.log_std)
        self.opt = keras.optimizers.Adam(
            learning_rate=cfg.learning_rate, epsilon=cfg.adam_eps, global_clipnorm=cfg.max_grad_norm
        )
        self.opt.build(self.train_vars)
        self.forward = Forward([self.pi, self.vf], fast=cfg.fast_act)
        self._update = compiled(self._update_step, cfg.jit_compile)
        self.buffer: RolloutBuffer | None = None
        self.refresh()

    # ------------------------------------------------------------------ persistence
    def networks(self) -> dict[str, Any]:
        return {"policy": self.pi, "value": self.vf}

    def optimizers(self) -> dict[str, Any]:
        return {"adam": self.opt}

    def variables(self) -> dict[str, Any]:
        return {"log_std": self.log_std} if self.log_std is not None else {}

    def policy_model(self) -> Any:
        return self.pi

    def refresh(self) -> None:
        self.forward.refresh()
        self._log_std = None if self.log_std is None else np.asarray(self.log_std.numpy(), np.float32)

    # ------------------------------------------------------------------ acting
    def _sample(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sample actions and their log-probabilities from policy outputs (NumPy)."""
        if self.discrete:
            logits = out - out.max(axis=1, keepdims=True)
            log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            gumbel = -np.log(-np.log(self.rng.random(logits.shape, dtype=np.float32) + 1e-20) + 1e-20)
            actions = np.argmax(logits + gumbel, axis=1)
            return actions, log_probs[np.arange(len(actions)), actions]
        noise = self.rng.standard_normal(out.shape, dtype=np.float32)
        actions = out + np.exp(self._log_std) * noise
        log_probs = (-0.5 * noise**2 - self._log_std - 0.5 * LOG_2PI).sum(axis=1)
        return actions.reshape(len(out), *self.action_shape), log_probs

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        out, _ = self.forward(obs)
        if deterministic:
            return out.argmax(axis=1) if self.discrete else out.reshape(len(out), *self.action_shape)
        return self._sample(out)[0]

    # ------------------------------------------------------------------ collecting
    def begin(self, env: Any) -> None:
        super().begin(env)
        self.buffer = RolloutBuffer(
            self.cfg.n_steps,
            env.num_envs,
            self.obs_shape,
            self.obs_dtype,
            self.action_shape,
            np.int64 if self.discrete else np.float32,
        )

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg, buf = self.cfg, self.buffer
        assert buf is not None and self.obs is not None, "call begin(env) first"
        progress = step / total_steps
        obs = self.obs
        for t in range(cfg.n_steps):
            out, value = self.forward(obs)
            actions, log_probs = self._sample(out)
            next_obs, reward, terminated, truncated, was_reset = env.step(actions)
            buf.obs[t] = obs
            buf.actions[t] = actions
            buf.log_probs[t] = log_probs
            buf.values[t] = value[:, 0]
            buf.rewards[t] = reward
            buf.terminated[t] = terminated
            buf.truncated[t] = truncated
            buf.valid[t] = ~was_reset
            obs = next_obs
        self.obs = obs
        buf.next_values[:-1] = buf.values[1:]
        buf.next_values[-1] = self.forward(obs)[1][:, 0]
        advantages, returns = compute_gae(
            buf.rewards, buf.values, buf.next_values, buf.terminated, buf.truncated, cfg.gamma, cfg.gae_lambda
        )

        lr = schedule(cfg.lr_schedule, cfg.learning_rate, progress)
        clip = schedule(cfg.clip_schedule, cfg.clip_range, progress)
        self.opt.learning_rate.assign(lr)
        flat = buf.flat(buf.obs, buf.actions, buf.log_probs, advantages, returns, buf.values, buf.valid)
        flat[-1] = flat[-1].astype(np.float32)
        stats = {k: float(v) for k, v in self._update(*flat, np.float32(clip)).items()}
        self.refresh()
        n_grad = int(stats.pop("gradient_steps"))
        self.n_updates += n_grad

        valid = buf.valid
        var_y = np.var(returns[valid])
        explained = float("nan") if var_y == 0 else float(1 - np.var(returns[valid] - buf.values[valid]) / var_y)
        metrics = {f"train/{k}": v for k, v in stats.items()}
        metrics.update(
            {
                "train/explained_variance": explained,
                "train/learning_rate": lr,
                "train/clip_range": clip,
                "train/n_updates": float(self.n_updates),
            }
        )
        if self._log_std is not None:
            metrics["train/std"] = float(np.exp(self._log_std).mean())
        return cfg.n_steps * env.num_envs, metrics

    # ------------------------------------------------------------------ the update (compiled)
    def _log_prob_entropy(self, out: Any, actions: Any) -> tuple[Any, Any]:
        tf = backend.tf()
        if self.discrete:
            log_p = tf.nn.log_softmax(out)
            logp = tf.gather(log_p, actions, batch_dims=1)
            entropy = -tf.reduce_sum(tf.exp(log_p) * log_p, axis=1)
            return logp, entropy
        flat_actions = tf.reshape(actions, tf.shape(out))
        z = (flat_actions - out) * tf.exp(-self.log_std)
        logp = tf.reduce_sum(-0.5 * z**2 - self.log_std - 0.5 * LOG_2PI, axis=1)
        entropy = tf.reduce_sum(self.log_std + 0.5 * (1.0 + LOG_2PI)) * tf.ones_like(logp)
        return logp, entropy

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
                logp, entropy = self._log_prob_entropy(out, a)
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
