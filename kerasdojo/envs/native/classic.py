"""Gymnasium's classic-control environments written with TensorFlow ops over a batch.

Each environment is a few pure functions of a state tensor ``[n, k]``, float64 as
Gymnasium keeps it (float32 for MountainCarContinuous, as there), with the
constants, integrators and rewards of Gymnasium's own code
(``gymnasium/envs/classic_control``): ``initial`` draws reset states,
``dynamics`` advances one step, ``observe`` builds the observation. Time limits
and automatic resets are added once for all of them by
:func:`kerasdojo.envs.native.step`. Inside ``tf.function(jit_compile=True)`` they
compile to a handful of fused XLA kernels.

The test ``tests/envs/test_native.py`` steps each one from Gymnasium's own
states and actions and compares the results, step for step.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from kerasdojo import backend


class NativeEnv:
    """One classic-control environment as batched TensorFlow functions."""

    env_id: ClassVar[str]
    state_dim: ClassVar[int]
    obs_dim: ClassVar[int]
    max_episode_steps: ClassVar[int]
    discrete: ClassVar[bool]
    n_actions: ClassVar[int] = 0  # Discrete envs
    action_low: ClassVar[float] = 0.0  # Box envs (one dimension)
    action_high: ClassVar[float] = 0.0
    dtype: ClassVar[str] = "float64"  # of the state and the physics; observations are float32

    def __init__(self) -> None:
        self.tf = backend.tf()

    def initial(self, rng: Any, n: int) -> Any:
        """Reset states for ``n`` envs, drawn from ``rng`` (a ``tf.random.Generator``)."""
        raise NotImplementedError

    def dynamics(self, s: Any, a: Any) -> tuple[Any, Any, Any]:
        """``(next_state, reward, terminated)`` for states ``s`` and actions ``a``
        (int32 indices ``[n]`` for Discrete envs, float32 ``[n, 1]`` for Box envs)."""
        raise NotImplementedError

    def observe(self, s: Any) -> Any:
        """The float32 observation of states ``s``."""
        return self.tf.cast(s, self.tf.float32)

    def _uniform(self, rng: Any, n: int, low: list[float], high: list[float]) -> Any:
        tf = self.tf
        lo, hi = tf.constant(low, self.dtype), tf.constant(high, self.dtype)
        return lo + (hi - lo) * rng.uniform([n, len(low)], dtype=self.dtype)


class CartPole(NativeEnv):
    """CartPole-v1: Euler integration, reward 1 on every step (the terminating one included)."""

    env_id = "CartPole-v1"
    state_dim = obs_dim = 4
    max_episode_steps = 500
    discrete = True
    n_actions = 2

    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass = masspole + masscart
    polemass_length = masspole * length
    theta_threshold = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def initial(self, rng: Any, n: int) -> Any:
        return self._uniform(rng, n, [-0.05] * 4, [0.05] * 4)

    def dynamics(self, s: Any, a: Any) -> tuple[Any, Any, Any]:
        tf = self.tf
        x, x_dot, theta, theta_dot = tf.unstack(s, axis=1)
        force = tf.where(a == 1, tf.constant(self.force_mag, self.dtype), -self.force_mag)
        cos, sin = tf.cos(theta), tf.sin(theta)
        temp = (force + self.polemass_length * tf.square(theta_dot) * sin) / self.total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * tf.square(cos) / self.total_mass)
        )
        x_acc = temp - self.polemass_length * theta_acc * cos / self.total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * x_acc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * theta_acc
        terminated = (
            (x < -self.x_threshold)
            | (x > self.x_threshold)
            | (theta < -self.theta_threshold)
            | (theta > self.theta_threshold)
        )
        return tf.stack([x, x_dot, theta, theta_dot], axis=1), tf.ones_like(x, tf.float32), terminated


class Acrobot(NativeEnv):
    """Acrobot-v1: the "book" dynamics integrated with one RK4 step of dt = 0.2, no torque noise."""

    env_id = "Acrobot-v1"
    state_dim, obs_dim = 4, 6
    max_episode_steps = 500
    discrete = True
    n_actions = 3

    dt = 0.2
    m1 = m2 = 1.0
    l1 = 1.0
    lc1 = lc2 = 0.5
    moi = 1.0
    g = 9.8
    max_vel_1, max_vel_2 = 4 * math.pi, 9 * math.pi

    def initial(self, rng: Any, n: int) -> Any:
        return self._uniform(rng, n, [-0.1] * 4, [0.1] * 4)

    def _derivs(self, th1: Any, th2: Any, dth1: Any, dth2: Any, torque: Any) -> tuple[Any, Any, Any, Any]:
        tf = self.tf
        m1, m2, l1, lc1, lc2, i1, i2, g = self.m1, self.m2, self.l1, self.lc1, self.lc2, self.moi, self.moi, self.g
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * tf.cos(th2)) + i1 + i2
        d2 = m2 * (lc2**2 + l1 * lc2 * tf.cos(th2)) + i2
        phi2 = m2 * lc2 * g * tf.cos(th1 + th2 - math.pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * dth2**2 * tf.sin(th2)
            - 2 * m2 * l1 * lc2 * dth2 * dth1 * tf.sin(th2)
            + (m1 * lc1 + m2 * l1) * g * tf.cos(th1 - math.pi / 2)
            + phi2
        )
        ddth2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dth1**2 * tf.sin(th2) - phi2) / (
            m2 * lc2**2 + i2 - d2**2 / d1
        )
        ddth1 = -(d2 * ddth2 + phi1) / d1
        return dth1, dth2, ddth1, ddth2

    def dynamics(self, s: Any, a: Any) -> tuple[Any, Any, Any]:
        tf = self.tf
        torque = tf.cast(a, self.dtype) - 1.0  # AVAIL_TORQUE = [-1, 0, +1]
        y0 = tf.unstack(s, axis=1)
        dt, dt2 = self.dt, self.dt / 2.0
        k1 = self._derivs(*y0, torque)
        k2 = self._derivs(*[y + dt2 * k for y, k in zip(y0, k1, strict=True)], torque)
        k3 = self._derivs(*[y + dt2 * k for y, k in zip(y0, k2, strict=True)], torque)
        k4 = self._derivs(*[y + dt * k for y, k in zip(y0, k3, strict=True)], torque)
        th1, th2, dth1, dth2 = (
            y + dt / 6.0 * (a1 + 2 * a2 + 2 * a3 + a4) for y, a1, a2, a3, a4 in zip(y0, k1, k2, k3, k4, strict=True)
        )
        th1, th2 = _wrap(th1), _wrap(th2)
        dth1 = tf.clip_by_value(dth1, -self.max_vel_1, self.max_vel_1)
        dth2 = tf.clip_by_value(dth2, -self.max_vel_2, self.max_vel_2)
        terminated = -tf.cos(th1) - tf.cos(th2 + th1) > 1.0
        reward = tf.where(terminated, 0.0, -1.0)
        return tf.stack([th1, th2, dth1, dth2], axis=1), reward, terminated

    def observe(self, s: Any) -> Any:
        tf = self.tf
        th1, th2, dth1, dth2 = tf.unstack(s, axis=1)
        obs = tf.stack([tf.cos(th1), tf.sin(th1), tf.cos(th2), tf.sin(th2), dth1, dth2], axis=1)
        return tf.cast(obs, tf.float32)


def _wrap(x: Any) -> Any:
    """Gymnasium's ``wrap(x, -pi, pi)``: subtract or add 2*pi until x is within [-pi, pi]."""
    tf = backend.tf()
    two_pi = 2 * math.pi
    above = x - two_pi * tf.math.ceil((x - math.pi) / two_pi)
    below = x + two_pi * tf.math.ceil((-math.pi - x) / two_pi)
    return tf.where(x > math.pi, above, tf.where(x < -math.pi, below, x))


class MountainCar(NativeEnv):
    """MountainCar-v0: reward -1 per step until the car reaches the flag (position >= 0.5)."""

    env_id = "MountainCar-v0"
    state_dim = obs_dim = 2
    max_episode_steps = 200
    discrete = True
    n_actions = 3

    min_position, max_position, max_speed = -1.2, 0.6, 0.07
    goal_position, goal_velocity = 0.5, 0.0
    force, gravity = 0.001, 0.0025

    def initial(self, rng: Any, n: int) -> Any:
        tf = self.tf
        position = -0.6 + 0.2 * rng.uniform([n], dtype=self.dtype)
        return tf.stack([position, tf.zeros_like(position)], axis=1)

    def _move(self, s: Any, push: Any) -> tuple[Any, Any]:
        tf = self.tf
        position, velocity = tf.unstack(s, axis=1)
        velocity = velocity + push + tf.cos(3 * position) * (-self.gravity)
        velocity = tf.clip_by_value(velocity, -self.max_speed, self.max_speed)
        position = tf.clip_by_value(position + velocity, self.min_position, self.max_position)
        velocity = tf.where((position == self.min_position) & (velocity < 0), tf.zeros_like(velocity), velocity)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        return tf.stack([position, velocity], axis=1), terminated

    def dynamics(self, s: Any, a: Any) -> tuple[Any, Any, Any]:
        tf = self.tf
        s2, terminated = self._move(s, tf.cast(a - 1, self.dtype) * self.force)
        return s2, -tf.ones_like(s2[:, 0], tf.float32), terminated


class MountainCarContinuous(MountainCar):
    """MountainCarContinuous-v0: +100 at the flag (position >= 0.45), -0.1 * action^2 per step."""

    env_id = "MountainCarContinuous-v0"
    max_episode_steps = 999
    discrete = False
    action_low, action_high = -1.0, 1.0
    goal_position = 0.45
    power = 0.0015
    dtype = "float32"  # Gymnasium keeps this state in float32
    gravity = 0.0025  # Gymnasium writes the same term as "- 0.0025 * cos(3 * position)"

    def dynamics(self, s: Any, a: Any) -> tuple[Any, Any, Any]:
        tf = self.tf
        action = a[:, 0]
        force = tf.clip_by_value(action, self.action_low, self.action_high)
        s2, terminated = self._move(s, force * self.power)
        reward = tf.where(terminated, 100.0, 0.0) - tf.square(action) * 0.1
        return s2, reward, terminated


class Pendulum(NativeEnv):
    """Pendulum-v1: reward -(angle^2 + 0.1 speed^2 + 0.001 torque^2); never terminates."""

    env_id = "Pendulum-v1"
    state_dim, obs_dim = 2, 3
    max_episode_steps = 200
    discrete = False
    action_low, action_high = -2.0, 2.0
    max_speed, dt, g, m, length = 8.0, 0.05, 10.0, 1.0, 1.0

    def initial(self, rng: Any, n: int) -> Any:
        return self._uniform(rng, n, [-math.pi, -1.0], [math.pi, 1.0])

    def dynamics(self, s: Any, a: Any) -> tuple[Any, Any, Any]:
        tf = self.tf
        th, thdot = tf.unstack(s, axis=1)
        u = tf.cast(tf.clip_by_value(a[:, 0], self.action_low, self.action_high), self.dtype)
        normalized = tf.math.floormod(th + math.pi, 2 * math.pi) - math.pi
        costs = normalized**2 + 0.1 * thdot**2 + 0.001 * u**2
        g, m, l, dt = self.g, self.m, self.length, self.dt  # noqa: E741
        new_thdot = thdot + (3 * g / (2 * l) * tf.sin(th) + 3.0 / (m * l**2) * u) * dt
        new_thdot = tf.clip_by_value(new_thdot, -self.max_speed, self.max_speed)
        new_th = th + new_thdot * dt
        return tf.stack([new_th, new_thdot], axis=1), tf.cast(-costs, tf.float32), tf.zeros_like(th, dtype=tf.bool)

    def observe(self, s: Any) -> Any:
        tf = self.tf
        th, thdot = tf.unstack(s, axis=1)
        return tf.cast(tf.stack([tf.cos(th), tf.sin(th), thdot], axis=1), tf.float32)


ENVS: dict[str, type[NativeEnv]] = {
    cls.env_id: cls for cls in (CartPole, Acrobot, MountainCar, MountainCarContinuous, Pendulum)
}
