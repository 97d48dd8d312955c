"""Recurrent PPO presets, after RL Baselines3 Zoo's ``hyperparams/ppo_lstm.yml`` (merged into
:data:`kerasdojo.agents.presets.PRESETS`).

The Zoo's NoVel ids are kerasdojo's own (:mod:`kerasdojo.envs.partial`, velocities hidden);
its LunarLander entries name v2, used here for v3. ``lin_X`` is ``X`` with a linear
schedule; ``normalize: true`` is ``normalize_obs`` and ``normalize_reward``. kerasdojo has no
gSDE: where the Zoo uses it (PendulumNoVel, MountainCarContinuousNoVel) the preset keeps the
rest of its values and plain Gaussian exploration. The LSTM is sb3-contrib's default (one
layer of 256, a separate one for the critic) where the yml sets no policy_kwargs.
"""

from __future__ import annotations

from typing import Any

_LANDER = {
    "n_envs": 16,
    "total_steps": 1_000_000,
    "n_steps": 1024,
    "batch_size": 64,
    "gae_lambda": 0.98,
    "gamma": 0.999,
    "n_epochs": 4,
    "ent_coef": 0.01,
}

RECURRENT_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # The Zoo's published CartPoleNoVel-v1 model (500.00 +/- 0.00: the sb3/ppo_lstm-CartPoleNoVel-v1 card).
    # The yml's current entry drops its policy_kwargs and normalisation; with them gone neither sb3-contrib
    # nor kerasdojo solved seed 0 in 100,000 steps (benchmarks/RESULTS.md, "memory-goals").
    ("ppo_lstm", "CartPoleNoVel-v1"): {
        "normalize_obs": True,
        "n_envs": 8,
        "total_steps": 100_000,
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "lr_schedule": "linear",
        "clip_range": 0.2,
        "clip_schedule": "linear",
        "ortho_init": False,
        "activation": "relu",
        "lstm_hidden_size": 64,
        "net_arch": (64,),
    },
    ("ppo_lstm", "PendulumNoVel-v1"): {
        "n_envs": 4,
        "total_steps": 100_000,
        "n_steps": 1024,
        "gae_lambda": 0.95,
        "gamma": 0.9,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
    },
    ("ppo_lstm", "MountainCarNoVel-v0"): {
        "normalize_obs": True,
        "normalize_reward": True,
        "n_envs": 16,
        "total_steps": 1_000_000,
        "n_steps": 16,
        "gae_lambda": 0.98,
        "gamma": 0.99,
        "n_epochs": 4,
        "ent_coef": 0.0,
    },
    ("ppo_lstm", "MountainCarContinuousNoVel-v0"): {
        "normalize_obs": True,
        "normalize_reward": True,
        "n_envs": 1,
        "total_steps": 20_000,
        "batch_size": 256,
        "n_steps": 8,
        "gamma": 0.9999,
        "learning_rate": 7.77e-5,
        "ent_coef": 0.00429,
        "clip_range": 0.1,
        "n_epochs": 10,
        "gae_lambda": 0.9,
        "max_grad_norm": 5.0,
        "vf_coef": 0.19,
        "log_std_init": -3.29,
        "ortho_init": False,
    },
    ("ppo_lstm", "Acrobot-v1"): {
        "normalize_obs": True,
        "normalize_reward": True,
        "n_envs": 16,
        "total_steps": 1_000_000,
        "n_steps": 256,
        "gae_lambda": 0.94,
        "gamma": 0.99,
        "n_epochs": 4,
        "ent_coef": 0.0,
    },
    ("ppo_lstm", "LunarLanderNoVel-v3"): dict(_LANDER),
    ("ppo_lstm", "LunarLanderContinuousNoVel-v3"): dict(_LANDER),
    ("ppo_lstm", "BipedalWalker-v3"): {
        "normalize_obs": True,
        "normalize_reward": True,
        "n_envs": 16,
        "total_steps": 5_000_000,
        "n_steps": 2048,
        "batch_size": 64,
        "gae_lambda": 0.95,
        "gamma": 0.99,
        "n_epochs": 10,
        "ent_coef": 0.001,
        "learning_rate": 2.5e-4,
        "clip_range": 0.2,
    },
}

# The Zoo's "atari" entry (CnnLstmPolicy, 4 stacked frames). The Zoo does not end episodes at a lost life
# there; kerasdojo's training does (for the returns), and the memory carries on through the whole game.
ATARI_RECURRENT: dict[str, Any] = {
    "net_arch": (),  # SB3's CNN policies have no MLP between the features (here the LSTM) and the heads
    "n_envs": 8,
    "total_steps": 10_000_000,
    "n_steps": 128,
    "n_epochs": 4,
    "batch_size": 256,
    "learning_rate": 2.5e-4,
    "lr_schedule": "linear",
    "clip_range": 0.1,
    "clip_schedule": "linear",
    "vf_coef": 0.5,
    "ent_coef": 0.01,
}
