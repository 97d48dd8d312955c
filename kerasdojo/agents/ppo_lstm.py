"""Recurrent PPO: an LSTM between the encoder and the heads (sb3-contrib's ``RecurrentPPO``).

For partially observed tasks (velocities hidden, a game that hides its state). The
observation's encoder (a flatten, a CNN, or one encoder per leaf of a Dict) feeds an
LSTM (``n_lstm_layers`` of ``lstm_hidden_size``); the policy and value MLPs of
``net_arch`` read its output. The critic has its own LSTM (``enable_critic_lstm``, the
default), reads the actor's without sending gradients into it (``shared_lstm``), or has
one linear layer on the features instead (both false), as in sb3-contrib.

Memory: each env's hidden and cell states are carried from step to step and zeroed
where an episode starts; the rollout stores the state each step began from and the
episode starts. The update replays sequences of ``seq_len`` steps from their stored
starting states, zeroing at the same starts (so before its first gradient step it
reproduces the rollout's log-probabilities); minibatches are sets of sequences, never
shuffled across time; the rest is PPO's own (``clipped_loss``, ``run_epochs``, GAE).
Acting is one NumPy step per vector step for flat observations (a compiled call for
images); the whole update, every epoch and minibatch, one compiled call.

``policy.keras`` takes ``[observation, lstm_state]`` and returns ``[output, new lstm_state]``,
the state shaped ``(batch, 2 * n_lstm_layers, lstm_hidden_size)`` (h and c of each layer),
zeros at an episode's start.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend, networks
from kerasdojo.agents import distributions, recurrent
from kerasdojo.agents.acting import NumpyForward
from kerasdojo.agents.base import Agent
from kerasdojo.agents.onpolicy import OnPolicyActorCritic, gae, n_logits
from kerasdojo.agents.ppo import PPOConfig, clipped_loss, loss_statistics, minibatch_weights, run_epochs
from kerasdojo.agents.rules import schedule
from kerasdojo.agents.speed import compiled, use_xla
from kerasdojo.config import option
from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec, assign

STATE_INPUT = "lstm_state"  # the name of policy.keras's state input


@dataclasses.dataclass(frozen=True)
class PPOLSTMConfig(PPOConfig):
    """Recurrent PPO hyperparameters (names and defaults follow sb3-contrib's RecurrentPPO)."""

    kind: ClassVar[str] = "ppo_lstm"

    n_steps: int = option(128, "Steps per env in each rollout (rollout size = n_steps * n_envs).", low=1)
    batch_size: int = option(128, "Steps per minibatch, in whole sequences of seq_len steps (one at least).", low=1)
    lstm_hidden_size: int = option(256, "Units of each LSTM layer.", low=1)
    n_lstm_layers: int = option(1, "Stacked LSTM layers.", low=1)
    shared_lstm: bool = option(
        False, "The critic reads the actor's LSTM, its gradient staying out (enable_critic_lstm is then ignored)."
    )
    enable_critic_lstm: bool = option(
        True, "A separate LSTM for the critic (off, with shared_lstm off: a linear layer on the features)."
    )
    seq_len: int = option(
        0,
        "Steps of each sequence the update replays from its stored state; must divide n_steps "
        "(0: the largest divisor of n_steps up to batch_size, minibatches as sb3-contrib's).",
        low=0,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len and self.n_steps % self.seq_len:
            raise DojoError(
                f"seq_len={self.seq_len} does not divide n_steps={self.n_steps}",
                hint="pick a divisor of n_steps, or seq_len=0 (the largest divisor up to batch_size)",
            )

    @property
    def sequence(self) -> int:
        """The length of the sequences the update replays."""
        if self.seq_len:
            return self.seq_len
        return max(d for d in range(1, min(self.batch_size, self.n_steps) + 1) if self.n_steps % d == 0)


class PPOLSTM(Agent):
    name = "ppo_lstm"
    Config = PPOLSTMConfig

    # PPO's rules on policy outputs, shared with the feed-forward actor-critics.
    dist_params = OnPolicyActorCritic.dist_params
    _sample = OnPolicyActorCritic._sample
    log_prob_entropy = OnPolicyActorCritic.log_prob_entropy
    rollout_metrics = OnPolicyActorCritic.rollout_metrics

    def __init__(self, cfg: PPOLSTMConfig, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        keras = backend.keras()
        self.cfg: PPOLSTMConfig = cfg
        self.dist = distributions.for_space(action_space)
        self.action_shape: tuple[int, ...] = self.dist.action_shape
        self.maskable = isinstance(self.dist, (distributions.Categorical, distributions.MultiCategorical))
        init = "orthogonal" if cfg.ortho_init else "glorot_uniform"
        hidden, layers = cfg.lstm_hidden_size, cfg.n_lstm_layers

        self.obs_inputs, self.encoder = recurrent.encoder(obs_spec, cfg.activation)
        features = int(self.encoder.output.shape[-1])
        self.pi_cells = recurrent.lstm_cells(layers, hidden, features, "pi_")
        self.critic_lstm = cfg.enable_critic_lstm and not cfg.shared_lstm
        self.vf_cells = recurrent.lstm_cells(layers, hidden, features, "vf_") if self.critic_lstm else []
        self.critic_linear = None
        if not (cfg.shared_lstm or cfg.enable_critic_lstm):
            self.critic_linear = keras.layers.Dense(hidden, name="vf_linear")
            self.critic_linear.build((None, features))
        if isinstance(self.dist, distributions.DiagGaussian):
            head, self.log_std = networks.gaussian_head(int(np.prod(self.action_shape)), cfg.log_std_init)
        else:
            head, self.log_std = networks.categorical_head(n_logits(self.dist)), None
        mlp = lambda p: networks.mlp_layers(cfg.net_arch, cfg.activation, init=init, prefix=p)  # noqa: E731
        self.pi_head = networks.build((hidden,), mlp("pi_") + head, "policy_head")
        self.vf_head = networks.build((hidden,), mlp("vf_") + networks.value_head(1.0), "value_head")
        self.pi_state = 2 * layers  # rows of the state that are the actor's; the critic's LSTM has the rest
        self.state_rows = self.pi_state * (2 if self.critic_lstm else 1)
        self.policy, self.critic = self._models()

        seen: set[int] = set()
        self.train_vars = [
            v
            for m in (self.policy, self.critic)
            for v in m.trainable_variables
            if not (id(v) in seen or seen.add(id(v)))  # shared layers once
        ]
        if self.log_std is not None:
            self.train_vars.append(self.log_std)
        self.opt = keras.optimizers.Adam(
            learning_rate=cfg.learning_rate, epsilon=cfg.adam_eps, global_clipnorm=cfg.max_grad_norm
        )
        self.opt.build(self.train_vars)
        xla = use_xla(cfg.jit_compile, self.obs_shape, self.obs_dtype)
        self._update = compiled(self._update_step, xla)
        self._tf_step = compiled(self._act_step, False)
        flat = not any(networks.is_image_space(leaf.shape, leaf.dtype) for leaf in obs_spec.leaves)
        heads = [NumpyForward.of(self.pi_head), NumpyForward.of(self.vf_head)]
        self._np = None
        if cfg.fast_act and flat and all(h is not None for h in heads):
            vf_lstm = recurrent.NumpyLSTM(self.vf_cells) if self.critic_lstm else None
            self._np = (*heads, recurrent.NumpyLSTM(self.pi_cells), vf_lstm)
        if cfg.sequence < min(cfg.n_steps, cfg.batch_size):  # a prime n_steps: little backpropagation in time
            self.notes.append(f"the update replays sequences of {cfg.sequence} steps (set seq_len to choose)")
        self.state: np.ndarray | None = None
        self.starts: np.ndarray | None = None
        self.refresh()

    # ------------------------------------------------------------------ networks
    def _models(self) -> tuple[Any, Any]:
        """``policy`` ([obs, state] -> [output, state]: policy.keras) and ``critic`` ([obs, the whole
        state] -> value), built of the same layers; together they hold every weight."""
        keras = backend.keras()
        hidden = self.cfg.lstm_hidden_size

        def inputs(rows: int) -> tuple[Any, Any]:
            state = keras.Input((rows, hidden), name=STATE_INPUT)
            obs = self.obs_inputs
            return ({**obs, STATE_INPUT: state} if isinstance(obs, dict) else [obs, state]), state

        policy_in, state = inputs(self.pi_state)
        features = self.encoder(self.obs_inputs)
        h, new_state = recurrent.functional_step(self.pi_cells, features, state)
        policy = keras.Model(policy_in, [self.pi_head(h), new_state], name="policy")

        critic_in, state = inputs(self.state_rows)
        if self.critic_lstm:
            h, _ = recurrent.functional_step(self.vf_cells, features, state[:, self.pi_state :])
        elif self.critic_linear is None:  # shared_lstm
            h, _ = recurrent.functional_step(self.pi_cells, features, state[:, : self.pi_state])
        else:
            h = self.critic_linear(features)
        critic = keras.Model(critic_in, self.vf_head(h), name="critic")
        return policy, critic

    def networks(self) -> dict[str, Any]:
        return {"policy": self.policy, "critic": self.critic}

    def optimizers(self) -> dict[str, Any]:
        return {"adam": self.opt}

    def variables(self) -> dict[str, Any]:
        return {"log_std": self.log_std} if self.log_std is not None else {}

    def policy_model(self) -> Any:
        return self.policy

    def refresh(self) -> None:
        if self._np is not None:
            for part in self._np:
                if part is not None:
                    part.refresh()
        if self.critic_linear is not None:
            self._critic_linear = [np.asarray(v.numpy(), np.float32) for v in self.critic_linear.weights]
        self._log_std = None if self.log_std is None else np.asarray(self.log_std.numpy(), np.float32)

    # ------------------------------------------------------------------ the networks over a sequence
    def sequence(self, obs: Any, starts: Any, state: Any, training: bool = True) -> tuple[Any, Any, Any]:
        """Policy outputs and values of every step (time-major, flattened to (T * B, ...)) and the
        final state, inside compiled code. ``obs`` leaves (T, B, ...), ``starts`` (T, B) float32,
        ``state`` (B, state_rows, hidden)."""
        tf = backend.tf()
        hidden, rows = self.cfg.lstm_hidden_size, self.pi_state
        shape = tf.shape(starts)
        flat = tf.nest.map_structure(lambda x: tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0)), obs)
        features = self.encoder(flat, training=training)
        seq = tf.reshape(features, tf.concat([shape, [features.shape[-1]]], 0))
        if self.critic_lstm:  # the actor's and the critic's LSTMs as one batched recurrence
            (h_pi, h_vf), finals = recurrent.tf_sequence(
                [self.pi_cells, self.vf_cells], seq, starts, [state[:, :rows], state[:, rows:]]
            )
            final = tf.concat(finals, axis=1)
        else:
            (h_pi,), (final,) = recurrent.tf_sequence([self.pi_cells], seq, starts, [state[:, :rows]])
            if self.critic_linear is None:  # shared_lstm: the critic's gradient stays out of the actor's LSTM
                h_vf = tf.stop_gradient(h_pi)
            else:
                h_vf = self.critic_linear(features)
        out = self.pi_head(tf.reshape(h_pi, [-1, hidden]), training=training)
        value = self.vf_head(tf.reshape(h_vf, [-1, hidden]), training=training)[:, 0]
        return out, value, final

    def _act_step(self, obs: Any, state: Any) -> tuple[Any, Any, Any]:
        """One step of every env from ``state`` (already reset where episodes start), compiled."""
        tf = backend.tf()
        seq = tf.nest.map_structure(lambda x: x[None], obs)
        starts = tf.zeros([1, tf.shape(state)[0]])
        return self.sequence(seq, starts, state, training=False)

    def step(self, obs: Any, state: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Policy outputs, values and new states of one vector step; ``state`` is zeroed first where
        ``starts`` (an episode's first observation)."""
        state = np.where(starts[:, None, None], np.float32(0.0), state).astype(np.float32)
        if self._np is None:
            out, value, new = self._tf_step(obs, state)
            return out.numpy(), value.numpy(), new.numpy()
        pi_head, vf_head, pi_lstm, vf_lstm = self._np
        x = recurrent.np_features(self.obs_spec, obs)
        h_pi, new = pi_lstm(x, state[:, : self.pi_state])
        if vf_lstm is not None:
            h_vf, new_vf = vf_lstm(x, state[:, self.pi_state :])
            new = np.concatenate([new, new_vf], axis=1)
        elif self.critic_linear is None:
            h_vf = h_pi
        else:
            kernel, bias = self._critic_linear
            h_vf = x @ kernel + bias
        return pi_head(h_pi), vf_head(h_vf)[:, 0], new

    # ------------------------------------------------------------------ acting
    def initial_state(self, n: int) -> np.ndarray:
        """The memory of ``n`` envs before their first step (zeros)."""
        return np.zeros((n, self.state_rows, self.cfg.lstm_hidden_size), np.float32)

    def act_recurrent(
        self,
        obs: Any,
        state: np.ndarray,
        starts: np.ndarray,
        deterministic: bool = True,
        mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions and the new memory for a batch of observations; ``starts``: which are an
        episode's first (their memory is zeroed first)."""
        out, _, new = self.step(obs, state, starts)
        if mask is not None and self.maskable and self.cfg.use_masks:
            out = distributions.np_mask_logits(out, mask)
        if deterministic:
            return self.dist.np_mode(*self.dist_params(out)), new
        return self._sample(out)[0], new

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        raise TypeError("a recurrent agent acts with act_recurrent(obs, state, starts, ...)")

    # ------------------------------------------------------------------ collecting
    def begin(self, env: Any) -> None:
        super().begin(env)
        n, cfg = env.num_envs, self.cfg
        self.state, self.starts = self.initial_state(n), np.ones(n, bool)
        self.masked = self.maskable and self.masks_of(env) is not None
        rows = (cfg.n_steps, n)
        self.buf = {
            "obs": self.obs_spec.zeros(rows),
            "actions": np.zeros((*rows, *self.action_shape), self.dist.action_dtype),
            "log_probs": np.zeros(rows, np.float32),
            "values": np.zeros(rows, np.float32),
            "rewards": np.zeros(rows, np.float32),
            "terminated": np.zeros(rows, bool),
            "truncated": np.zeros(rows, bool),
            "valid": np.ones(rows, bool),
            "starts": np.zeros(rows, bool),
            "states": np.zeros((*rows, self.state_rows, cfg.lstm_hidden_size), np.float32),
            "masks": np.ones((*rows, env.mask_size), bool) if self.masked else None,
        }

    def collect(self, env: Any) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """``n_steps`` vector steps into the rollout, carrying the memory; GAE advantages and returns."""
        cfg, buf = self.cfg, self.buf
        obs = self.obs
        for t in range(cfg.n_steps):
            buf["starts"][t] = self.starts
            state = np.where(self.starts[:, None, None], np.float32(0.0), self.state)
            buf["states"][t] = state
            out, value, self.state = self.step(obs, state, self.starts)
            mask = None
            if self.masked:
                mask = buf["masks"][t] = env.action_mask
            actions, log_probs = self._sample(out, mask)
            next_obs, reward, terminated, truncated, valid = env.step(actions)
            assign(buf["obs"], t, obs)
            buf["actions"][t], buf["log_probs"][t], buf["values"][t] = actions, log_probs, value
            buf["rewards"][t], buf["terminated"][t], buf["truncated"][t] = reward, terminated, truncated
            buf["valid"][t] = valid
            self.starts = ~env.in_episode  # after a reset call, the observation starts an episode
            obs = next_obs
        self.obs = obs
        next_values = np.empty_like(buf["values"])
        next_values[:-1] = buf["values"][1:]
        next_values[-1] = self.step(obs, self.state, self.starts)[1]
        advantages, returns = gae(
            buf["rewards"], buf["values"], next_values, buf["terminated"], buf["truncated"], cfg.gamma, cfg.gae_lambda
        )
        return buf, advantages, returns

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        progress = step / total_steps
        buf, advantages, returns = self.collect(env)
        lr = schedule(cfg.lr_schedule, cfg.learning_rate, progress)
        clip = schedule(cfg.clip_schedule, cfg.clip_range, progress)
        self.opt.learning_rate.assign(lr)
        arrays = (buf["obs"], buf["actions"], buf["log_probs"], advantages, returns, buf["values"])
        flags = (buf["valid"].astype(np.float32), buf["starts"].astype(np.float32))
        first = buf["states"][:: cfg.sequence]  # each sequence's starting state, the only ones the update reads
        stats = self._update(*arrays, *flags, first, np.float32(clip), buf["masks"])
        stats = {k: float(v) for k, v in stats.items()}
        self.refresh()
        n_grad = int(stats.pop("gradient_steps"))
        self.n_updates += n_grad
        metrics = {f"train/{k}": v for k, v in stats.items()}
        metrics.update(self.rollout_metrics(SimpleNamespace(valid=buf["valid"], values=buf["values"]), returns, lr))
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
        starts: Any,
        states: Any,
        clip: Any,
        masks: Any = None,
    ) -> dict[str, Any]:
        """Every epoch of one update in one compiled call. Arrays are time-major (n_steps, n_envs, ...);
        each env's rollout is cut into sequences of ``seq_len`` steps (``chunks``), each starting from
        the state stored at its first step (``states``: those, (n_steps // seq_len, n_envs, rows,
        hidden)); a minibatch is ``batch_size // seq_len`` of them."""
        tf = backend.tf()
        cfg = self.cfg
        length = cfg.sequence
        count = (cfg.n_steps // length) * actions.shape[1]
        chunks = lambda x: recurrent.to_sequences(x, length)  # noqa: E731
        seqs = tf.nest.map_structure(chunks, (obs, actions, old_logp, advantages, returns, old_values, valid, starts))
        legal = None if masks is None else chunks(masks)
        first = tf.reshape(states, [-1, *states.shape[2:]])  # (sequences, rows, hidden)
        per_batch = max(1, min(cfg.batch_size // length, count))
        n_mb = count // per_batch
        total = cfg.n_epochs * n_mb
        perms = tf.argsort(self.tf_rng.uniform([cfg.n_epochs, count]), axis=1)[:, : n_mb * per_batch]
        batches = tf.reshape(perms, [total, per_batch])

        def minibatch(i: Any) -> tuple[Any, Any, tuple[Any, ...]]:
            idx = batches[i]
            take = lambda x: tf.gather(x, idx, axis=1)  # noqa: E731
            o, a, olp, adv, ret, ov, m, s = tf.nest.map_structure(take, seqs)
            flat = lambda x: tf.reshape(x, [-1, *x.shape[2:]])  # noqa: E731
            lm = None if legal is None else flat(take(legal))
            weight, adv = minibatch_weights(cfg, flat(adv), flat(m))
            with tf.GradientTape() as tape:
                out, value, _ = self.sequence(o, s, tf.gather(first, idx))
                logp, entropy = self.log_prob_entropy(out, flat(a), lm)
                args = (flat(olp), adv, flat(ret), value, flat(ov), weight, clip)
                loss, parts = clipped_loss(cfg, logp, entropy, *args)
            approx_kl, stats = loss_statistics(weight, clip, parts)
            return tape.gradient(loss, self.train_vars), approx_kl, stats

        return run_epochs(total, minibatch, self.opt, self.train_vars, cfg.target_kl)
