"""What PPO and A2C share: policy and value networks, acting, and the
collection of an ``n_steps`` rollout from a vector env with GAE.

Separate policy and value MLPs (SB3's default); on images one CNN shared by
both heads (SB3's CnnPolicy), run once per batch. A categorical policy for
Discrete actions, a Gaussian with a state-independent log-std for Box actions
(sampled unclipped, clipped to the bounds by the env wrapper). Acting is one
NumPy forward pass per vector step, or one compiled TensorFlow call for CNNs
(see :class:`~kerasdojo.agents.acting.Forward`).
Each algorithm adds its config fields, its optimizer and its compiled update.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend, networks
from kerasdojo.agents import distributions
from kerasdojo.agents.acting import Forward
from kerasdojo.agents.base import Agent, AgentConfig
from kerasdojo.agents.buffers import RolloutBuffer
from kerasdojo.agents.speed import Direct, cnn_precision, compiled
from kerasdojo.config import option
from kerasdojo.encoders import build_nested
from kerasdojo.observations import ObsSpec, assign

# --------------------------------------------------------------------------- the family's rules (NumPy and TF twins)


def td_errors(rewards: Any, values: Any, next_values: Any, not_terminal: Any, gamma: float) -> Any:
    """``delta_t = r_t + gamma * V(o_{t+1}) * (1 - terminated_t) - V(o_t)`` (arrays or tensors)."""
    return rewards + gamma * next_values * not_terminal - values


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns (Schulman et al. 2016), arrays shaped (T, n_envs).

    ``next_values[t]`` is ``V(o_{t+1})``, the value of the observation the step returned.
    The sum of future TD errors stops at any episode end (terminated or truncated).
    """
    advantages = np.zeros_like(rewards, dtype=np.float32)
    deltas = td_errors(rewards, values, next_values, 1.0 - terminated.astype(np.float32), gamma)
    carry_on = 1.0 - np.logical_or(terminated, truncated).astype(np.float32)
    last = np.zeros(rewards.shape[1:], np.float32)
    for t in range(rewards.shape[0] - 1, -1, -1):
        last = deltas[t] + gamma * lam * carry_on[t] * last
        advantages[t] = last
    return advantages, advantages + values


def gae_tf(
    rewards: Any, values: Any, next_values: Any, terminated: Any, done: Any, gamma: float, lam: float
) -> tuple[Any, Any]:
    """:func:`gae` inside compiled code: ``terminated`` float32, ``done`` (terminated or
    truncated) bool, all shaped (T, n_envs)."""
    tf = backend.tf()
    deltas = td_errors(rewards, values, next_values, 1.0 - terminated, gamma)
    carry = gamma * lam * (1.0 - tf.cast(done, tf.float32))
    advantages = tf.scan(
        lambda acc, x: x[0] + x[1] * acc, (deltas, carry), initializer=tf.zeros(tf.shape(rewards)[1:]), reverse=True
    )
    return advantages, advantages + values


def explained_variance(returns: np.ndarray, values: np.ndarray) -> float:
    """``1 - Var(returns - values) / Var(returns)``: how much of the returns the values explain (NaN when
    the returns do not vary)."""
    var_y = np.var(returns)
    return float("nan") if var_y == 0 else float(1 - np.var(returns - values) / var_y)


def explained_variance_tf(returns: Any, values: Any) -> Any:
    """:func:`explained_variance` inside compiled code."""
    tf = backend.tf()
    var_y = tf.math.reduce_variance(returns)
    nan = tf.constant(float("nan"))
    return tf.where(var_y == 0, nan, 1.0 - tf.math.reduce_variance(returns - values) / var_y)


def row_sum(x: Any, keepdims: bool = False) -> Any:
    """The sum of a minibatch's values inside compiled code: of all of them for a minibatch
    ``(batch,)``, of each row for minibatches of many seeds at once ``(seeds, batch)``
    (:mod:`kerasdojo.agents.seeds`). One seed's minibatch runs the very op it always did."""
    tf = backend.tf()
    if len(x.shape) < 2:
        return tf.reduce_sum(x)
    return tf.reduce_sum(x, axis=-1, keepdims=keepdims)


def normalize_advantages(advantages: Any, weight: Any) -> Any:
    """Advantages standardised with the mean and std under ``weight`` (summing to 1), inside compiled code."""
    tf = backend.tf()
    mean = row_sum(weight * advantages, keepdims=True)
    std = tf.sqrt(row_sum(weight * (advantages - mean) ** 2, keepdims=True))
    return (advantages - mean) / (std + 1e-8)


def mask_weights(valid: Any) -> Any:
    """Per-transition weights of a mean over the ``valid`` ones (float32 0/1), inside compiled code."""
    tf = backend.tf()
    return valid / tf.maximum(row_sum(valid, keepdims=True), 1.0)


def n_logits(dist: Any) -> int:
    """The policy outputs of a distribution over discrete actions: its logits."""
    if isinstance(dist, distributions.Categorical):
        return dist.n
    if isinstance(dist, distributions.MultiCategorical):
        return int(sum(dist.nvec))
    return int(np.prod(dist.action_shape))  # Bernoulli: one per bit


@dataclasses.dataclass(frozen=True)
class OnPolicyConfig(AgentConfig):
    """Fields of every on-policy actor-critic (names follow Stable-Baselines3)."""

    kind: ClassVar[str] = "actor-critic"

    learning_rate: float = option(3e-4, "Learning rate.", low=0, low_open=True)
    lr_schedule: str = option(
        "constant", "constant, or linear decay to 0 over training.", choices=("constant", "linear")
    )
    n_steps: int = option(512, "Steps per env in each rollout (rollout size = n_steps * n_envs).", low=1)
    gamma: float = option(0.99, "Discount factor.", low=0, high=1)
    gae_lambda: float = option(0.95, "GAE lambda (1: Monte Carlo returns, 0: one-step TD).", low=0, high=1)
    normalize_advantage: bool = option(True, "Standardise advantages (within each minibatch).")
    ent_coef: float = option(0.0, "Entropy bonus coefficient.", low=0)
    vf_coef: float = option(0.5, "Value loss coefficient.", low=0)
    max_grad_norm: float = option(0.5, "Clip the global gradient norm.", low=0, low_open=True)
    log_std_init: float = option(0.0, "Initial log standard deviation of Gaussian policies.")
    ortho_init: bool = option(True, "Orthogonal initialisation (gains sqrt(2), 0.01 policy, 1 value).")


class OnPolicyActorCritic(Agent):
    """Networks, acting and rollout collection; subclasses provide ``learn``'s update."""

    Config = OnPolicyConfig

    def __init__(self, cfg: OnPolicyConfig, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        self.cfg: OnPolicyConfig = cfg
        obs_shape, obs_dtype = self.obs_shape, self.obs_dtype
        init = "orthogonal" if cfg.ortho_init else "glorot_uniform"
        self.precision = cnn_precision(cfg.precision, obs_shape, obs_dtype, self.notes)

        def torso() -> list[Any]:
            return networks.torso_layers(
                obs_shape, obs_dtype, cfg.net_arch, cfg.activation, init, math.sqrt(2), self.precision
            )

        self.dist = distributions.for_space(action_space)
        self.action_shape: tuple[int, ...] = self.dist.action_shape
        self.discrete = isinstance(self.dist, distributions.Categorical)
        self.maskable = isinstance(self.dist, (distributions.Categorical, distributions.MultiCategorical))
        if isinstance(self.dist, distributions.DiagGaussian):
            head, self.log_std = networks.gaussian_head(int(np.prod(self.action_shape)), cfg.log_std_init)
        else:  # logits: one per action (Categorical), per part's action (MultiCategorical), per bit (Bernoulli)
            head = networks.categorical_head(n_logits(self.dist))
            self.log_std = None
        keras = backend.keras()
        if obs_spec.nested:  # shared leaf encoders, then a policy MLP and a value MLP (SB3's MultiInputPolicy)
            mlp = lambda p: networks.mlp_layers(cfg.net_arch, cfg.activation, init=init, prefix=p)  # noqa: E731
            self.joint = build_nested(
                obs_spec,
                {"policy": mlp("pi_") + head, "value": mlp("vf_") + networks.value_head(1.0)},
                "actor_critic",
                cnn_dtype=self.precision,
            )
        elif networks.is_image_space(obs_shape, obs_dtype):
            dtype = networks.input_dtype(obs_shape, obs_dtype)
            self.joint = networks.build_shared(
                obs_shape, torso(), {"policy": head, "value": networks.value_head(1.0)}, dtype
            )
        else:
            self.joint = None
        if self.joint is not None:
            self.pi = keras.Model(self.joint.input, self.joint.outputs[0], name="policy")
            self.vf = keras.Model(self.joint.input, self.joint.outputs[1], name="value")
            forward_models = [self.joint]
        else:
            dtype = networks.input_dtype(obs_shape, obs_dtype)
            self.pi = networks.build(obs_shape, torso() + head, "policy", dtype)
            self.vf = networks.build(obs_shape, torso() + networks.value_head(1.0), "value", dtype)
            forward_models = [self.pi, self.vf]
        seen: set[int] = set()
        self.train_vars = [
            v
            for v in [*self.pi.trainable_variables, *self.vf.trainable_variables]
            if not (id(v) in seen or seen.add(id(v)))  # the shared torso once
        ]
        if self.log_std is not None:
            self.train_vars.append(self.log_std)
        # Acting runs the trained CNN itself, so PPO's old log-probabilities come from the same
        # math as its new ones: with XLA in float32, or without XLA in bfloat16 (XLA's CPU
        # bfloat16 convolutions are slow; oneDNN's on 8 stacks take as long as XLA's float32).
        jit = self.joint is not None and self.precision == "float32"
        self.forward = Forward(forward_models, fast=cfg.fast_act, jit=jit)
        self.buffer: RolloutBuffer | None = None

    # ------------------------------------------------------------------ persistence
    def networks(self) -> dict[str, Any]:
        return {"policy": self.pi, "value": self.vf}

    def variables(self) -> dict[str, Any]:
        return {"log_std": self.log_std} if self.log_std is not None else {}

    def policy_model(self) -> Any:
        return self.pi if self.precision == "float32" else networks.float32_twin(self.pi)

    def refresh(self, values: list[Any] | None = None) -> None:
        """After the weights changed; ``values``: what :meth:`compiled_update`'s call returned."""
        if values is None:
            self.forward.refresh()
            self._log_std = None if self.log_std is None else np.asarray(self.log_std.numpy(), np.float32)
            return
        *weights, log_std = values
        self.forward.refresh(weights)
        self._log_std = None if self.log_std is None else np.asarray(log_std, np.float32)

    def compiled_update(self, jit: bool) -> Any:
        """The Gymnasium path's update in one call: it sets the learning rate, runs
        ``_update_step(*args)`` and returns its statistics with the new weights acting needs (for
        :meth:`refresh`). One TensorFlow call per rollout instead of three: an A2C update on
        CartPole comes every 40 env steps (benchmarks/RESULTS.md)."""
        tf = backend.tf()

        def update(lr: Any, *args: Any) -> tuple[Any, list[Any]]:
            self.opt.learning_rate.assign(lr)
            stats = self._update_step(*args)
            log_std = tf.zeros([]) if self.log_std is None else tf.convert_to_tensor(self.log_std.value)
            return stats, [*self.forward.tensors(), log_std]

        return Direct(compiled(update, jit))

    # ------------------------------------------------------------------ acting
    def dist_params(self, out: Any, tf_graph: bool = False) -> tuple[Any, ...]:
        """The distribution's parameters from policy outputs: the logits, or the mean and the
        log-std (the variable inside compiled code, its NumPy copy outside)."""
        if self.log_std is None:
            return (out,)
        return (out, self.log_std if tf_graph else self._log_std)

    def _sample(self, out: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Sample actions and their log-probabilities from policy outputs (NumPy), legal ones only with ``mask``."""
        if mask is not None:
            out = distributions.np_mask_logits(out, mask)
        return self.dist.np_sample(*self.dist_params(out), self.rng)

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        out, _ = self.forward(obs)
        if mask is not None and self.maskable and self.cfg.use_masks:
            out = distributions.np_mask_logits(out, mask)
        if deterministic:
            return self.dist.np_mode(*self.dist_params(out))
        return self._sample(out)[0]

    # ------------------------------------------------------------------ collecting
    def begin(self, env: Any) -> None:
        super().begin(env)
        masked = self.maskable and self.masks_of(env) is not None
        self.buffer = RolloutBuffer(
            self.cfg.n_steps,
            env.num_envs,
            self.obs_spec,
            self.action_shape,
            self.dist.action_dtype,
            mask_size=env.mask_size if masked else 0,
        )

    def collect(self, env: Any) -> tuple[RolloutBuffer, np.ndarray, np.ndarray]:
        """Fill the rollout buffer with ``n_steps`` vector steps; return it with GAE advantages and returns."""
        cfg, buf = self.cfg, self.buffer
        assert buf is not None and self.obs is not None, "call begin(env) first"
        obs = self.obs
        for t in range(cfg.n_steps):
            out, value = self.forward(obs)
            mask = None
            if buf.masks is not None:
                mask = buf.masks[t] = env.action_mask
            actions, log_probs = self._sample(out, mask)
            next_obs, reward, terminated, truncated, valid = env.step(actions)
            assign(buf.obs, t, obs)
            buf.actions[t] = actions
            buf.log_probs[t] = log_probs
            buf.values[t] = value[:, 0]
            buf.rewards[t] = reward
            buf.terminated[t] = terminated
            buf.truncated[t] = truncated
            buf.valid[t] = valid
            obs = next_obs
        self.obs = obs
        buf.next_values[:-1] = buf.values[1:]
        buf.next_values[-1] = self.forward(obs)[1][:, 0]
        advantages, returns = gae(
            buf.rewards, buf.values, buf.next_values, buf.terminated, buf.truncated, cfg.gamma, cfg.gae_lambda
        )
        return buf, advantages, returns

    def rollout_metrics(self, buf: RolloutBuffer, returns: np.ndarray, lr: float) -> dict[str, float]:
        """Explained variance of the value predictions, learning rate, update count, policy std."""
        valid = buf.valid
        explained = explained_variance(returns[valid], buf.values[valid])
        metrics = {
            "train/explained_variance": explained,
            "train/learning_rate": lr,
            "train/n_updates": float(self.n_updates),
        }
        if self._log_std is not None:
            metrics["train/std"] = float(np.exp(self._log_std).mean())
        return metrics

    # ------------------------------------------------------------------ inside compiled updates
    def policy_value(self, obs: Any, training: bool = True) -> tuple[Any, Any]:
        """Policy outputs and values (shape (batch,)) of a batch: one pass of a shared torso."""
        if self.joint is not None:
            out, value = self.joint(obs, training=training)
        else:
            out, value = self.pi(obs, training=training), self.vf(obs, training=training)
        return out, value[:, 0]

    def log_prob_entropy(self, out: Any, actions: Any, masks: Any = None) -> tuple[Any, Any]:
        """Log-probabilities of ``actions`` and the entropy under the policy outputs ``out`` (TF),
        over the legal actions only when ``masks`` is given."""
        if masks is not None:
            out = distributions.tf_mask_logits(out, masks)
        return self.dist.tf_log_prob_entropy(*self.dist_params(out, tf_graph=True), actions)
