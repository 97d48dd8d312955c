"""Acting from a policy's outputs alone, as kerasdojo's agents act from ``policy.keras``: what
an exported file, run in its own runtime, needs to play (``kerasdojo eval --policy``) and what
the export's check compares (greedy choices and how near each is to a tie)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from kerasdojo import backend, portable
from kerasdojo.agents import distributions


def decisions(out: np.ndarray, space: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Greedy choices from a model's outputs and how far each lies from changing (the gap between
    the best and the runner-up, or from the threshold), or None for continuous outputs."""
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        sizes = [int(space.n)] if isinstance(space, spaces.Discrete) else np.asarray(space.nvec).reshape(-1).tolist()
        picks, gaps = [], []
        for part in np.split(out, np.cumsum(sizes)[:-1], axis=1):
            top = np.sort(part, axis=1)
            picks.append(part.argmax(1))
            gaps.append(top[:, -1] - top[:, -2] if part.shape[1] > 1 else np.full(len(part), np.inf))
        return np.stack(picks, 1), np.stack(gaps, 1)
    if isinstance(space, spaces.MultiBinary):
        return (out > 0).astype(np.int8), np.abs(out)
    if space == "labels":  # a classifier: softmax probabilities, or one sigmoid probability
        if out.shape[1] == 1:
            return (out > 0.5).astype(np.int8), np.abs(out - 0.5)
        return decisions(out, spaces.Discrete(out.shape[1]))
    return None


def actions_from(out: np.ndarray, space: Any, mask: np.ndarray | None = None, rng: Any = None) -> np.ndarray:
    """Actions from a policy's outputs as kerasdojo's agents take them from ``policy.keras``:
    the argmax of logits or Q values (per part for MultiDiscrete, over legal actions where
    ``mask`` says), logits above 0 for MultiBinary, the output clipped to a Box's bounds. With
    ``rng``, sampled from the logits instead, as PPO and A2C sample (the same draws from the
    same generator)."""
    n = len(out)
    if isinstance(space, spaces.Box):
        return np.clip(out.reshape(n, *space.shape), space.low, space.high).astype(np.float32)
    if isinstance(space, spaces.MultiBinary):
        if rng is not None:
            return distributions.for_space(space).np_sample(out, rng)[0]
        return (out > 0).astype(np.int8).reshape(n, *space.shape)
    if mask is not None:
        out = distributions.np_mask_logits(out, mask.reshape(out.shape))
    if rng is not None:
        return distributions.for_space(space).np_sample(out, rng)[0]  # the agents' own sampling
    picks = decisions(out, space)[0]
    return picks[:, 0] if isinstance(space, spaces.Discrete) else picks.reshape(n, *space.shape)


def feed(obs: Any) -> dict[str, np.ndarray]:
    """Observations as an exported model's named inputs: ``obs``, or one per leaf."""
    return dict(obs) if isinstance(obs, dict) else {portable.SINGLE_INPUT: obs}


SAMPLING = {"ppo": "logits", "a2c": "logits", "dqn": "epsilon"}  # how each agent acts when not greedy


class PolicyActor:
    """An agent made of a policy's forward pass alone (an exported file in its runtime, or the
    Keras model): ``act(obs, deterministic, mask)`` as kerasdojo's agents have it. Not greedy,
    it samples as its agent does: from the logits (PPO, A2C on discrete actions), or
    epsilon-greedy with ``epsilon`` (DQN); ``samples`` says whether it can."""

    def __init__(
        self,
        forward: Callable[[dict[str, np.ndarray]], np.ndarray],
        space: Any,
        agent: str = "",
        epsilon: float = 0.0,
        use_masks: bool = True,
    ) -> None:
        self.forward, self.space, self.epsilon, self.use_masks = forward, space, epsilon, use_masks
        self.sampling = None if isinstance(space, spaces.Box) else SAMPLING.get(agent)
        self.samples = self.sampling is not None
        self.rng = np.random.default_rng(0)  # evaluations swap in their own seeded generator

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        out = self.forward(feed(obs))
        mask = mask if self.use_masks else None
        if deterministic or self.sampling is None:
            return actions_from(out, self.space, mask)
        if self.sampling == "logits":
            return actions_from(out, self.space, mask, self.rng)
        greedy = actions_from(out, self.space, mask)  # DQN: epsilon-greedy, as its act draws it
        n, k = len(greedy), int(self.space.n)
        explore = self.rng.random(n) < self.epsilon
        random = self.rng.integers(0, k, n) if mask is None else np.argmax(self.rng.random((n, k)) * mask, axis=1)
        return np.where(explore, random, greedy)


def keras_forward(model: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """The Keras model's forward pass, compiled once for any batch size (a traced call costs
    well under a millisecond where an eager one costs ten)."""
    tf = backend.tf()
    specs = portable.input_specs(model)
    single = list(specs) == [portable.SINGLE_INPUT]
    signature = {name: tf.TensorSpec(shape, dtype) for name, (shape, dtype) in specs.items()}
    call = tf.function(
        lambda inputs: model(inputs[portable.SINGLE_INPUT] if single else inputs, training=False),
        input_signature=[signature],
    )

    def forward(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with tf.device("/CPU:0"):  # float32 as the runtimes compute it (a GPU may use TF32)
            return np.asarray(call({k: inputs[k] for k in signature}), np.float32)

    return forward


# --------------------------------------------------------------------------- the check's observations
