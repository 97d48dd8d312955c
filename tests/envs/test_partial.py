"""RL Zoo's NoVel ids as kerasdojo's own: the full task with its velocities set to 0."""

from __future__ import annotations

import numpy as np
import pytest

from kerasdojo import envs
from kerasdojo.envs.partial import NO_VELOCITY


@pytest.mark.parametrize("novel", ["CartPoleNoVel-v1", "PendulumNoVel-v1", "MountainCarContinuousNoVel-v0"])
def test_novel_ids_hide_the_velocities_of_the_full_task(novel: str) -> None:
    full_id, hidden = NO_VELOCITY[novel]
    spec, full = envs.resolve(novel), envs.resolve(full_id)
    assert (spec.max_episode_steps, spec.reward_threshold) == (full.max_episode_steps, full.reward_threshold)
    masked, plain = envs.make_env(novel), envs.make_env(full_id)
    try:
        a, b = masked.reset(seed=3)[0], plain.reset(seed=3)[0]
        kept = [i for i in range(len(b)) if i not in hidden]
        for _ in range(20):  # same dynamics, same seed: the same states, velocities zeroed
            assert np.array_equal(a[kept], b[kept]) and not a[list(hidden)].any()
            action = plain.action_space.sample()
            a, b = masked.step(action)[0], plain.step(action)[0]
        assert np.abs(b[list(hidden)]).max() > 0  # the full task's velocities are not 0
    finally:
        masked.close()
        plain.close()
    vec = envs.make_vec(novel, 2, seed=0)  # and kerasdojo's vector env serves it
    try:
        assert not vec.reset(seed=0)[:, list(hidden)].any()
    finally:
        vec.close()


def test_novel_ids_are_listed_and_described() -> None:
    listed = envs.list_envs("NoVel")
    assert set(NO_VELOCITY) <= {env_id for ids in listed.values() for env_id in ids}
