"""Atari games (ALE ids) with the standard preprocessing, ale-py's vector env doing the work.

The conventions are those RL Zoo's Atari presets were tuned with (SB3's
``AtariWrapper`` plus a stack of 4 frames), run in ale-py's C++ threads by
``ale_py.vector_env.AtariVectorEnv``:

* up to 30 no-op actions at reset, and FIRE for games that need it (the ones
  whose action 1 is FIRE, Breakout's serve) at reset and on the step after a
  lost life, much as SB3's ``FireResetEnv`` under ``EpisodicLifeEnv`` (which
  plays NOOP, FIRE and action 2 inside its reset): the agent never has to
  learn to serve. That forced step's action is the env's, so agents drop its
  transition (``fire_forced`` in the step info);
* frame skip 4 (one agent step = 4 emulator frames) with a max over the last two;
* 84x84 grayscale frames, the last 4 stacked: observations are ``uint8`` arrays
  shaped ``(4, 84, 84)``, channels first, the layout ale-py and Gymnasium's
  ``FrameStackObservation`` both produce. Networks take them as they are;
* for **training** only: a lost life ends the episode the agent learns from
  (the game goes on, as SB3's ``EpisodicLifeEnv``) and rewards are clipped to
  their sign. Episode statistics (``rollout/ep_rew_mean``) still count whole
  games and raw scores, as SB3's ``Monitor`` under the wrapper does;
* for **evaluation**: whole games, raw scores.

Sticky actions are the env's own: ``ALE/...-v5`` ids repeat the previous action
with probability 0.25 (Machado et al. 2018), ``...NoFrameskip-v4`` ids never.

:func:`make_single` builds the same preprocessing from Gymnasium's
``AtariPreprocessing`` and ``FrameStackObservation`` on one env (needs OpenCV):
the reference the vector env is tested against, and the env that records
colour videos and renders to a window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasdojo.errors import DojoError

STACK = 4
SCREEN = 84
FRAMESKIP = 4
NOOP_MAX = 30
# --env-kwargs an ALE id accepts on top of its spec's (sticky actions, action set, episode cap).
PREPROCESSING_KWARGS = ("noop_max", "frameskip", "stack_num", "screen_size")
SPEC_KWARGS = ("repeat_action_probability", "full_action_space", "max_num_frames_per_episode")


def is_atari(spec: Any) -> bool:
    """Whether a Gymnasium spec is an Arcade Learning Environment game."""
    entry = spec.entry_point if isinstance(spec.entry_point, str) else getattr(spec.entry_point, "__module__", "")
    return entry.startswith("ale_py")


def settings(spec: Any, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The game and the settings of one ALE id with ``--env-kwargs`` applied (unknown keys refused)."""
    kwargs = dict(env_kwargs or {})
    unknown = sorted(set(kwargs) - set(PREPROCESSING_KWARGS) - set(SPEC_KWARGS))
    if unknown:
        raise DojoError(
            f"{spec.id} does not accept these --env-kwargs: {', '.join(unknown)}",
            hint="with the Atari preprocessing it takes " + ", ".join(SPEC_KWARGS + PREPROCESSING_KWARGS),
        )
    out = {
        "game": spec.kwargs["game"],
        "repeat_action_probability": float(spec.kwargs.get("repeat_action_probability", 0.25)),
        "full_action_space": bool(spec.kwargs.get("full_action_space", False)),
        "max_num_frames_per_episode": int(spec.kwargs.get("max_num_frames_per_episode", 108_000)),
        "noop_max": NOOP_MAX,
        "frameskip": FRAMESKIP,
        "stack_num": STACK,
        "screen_size": SCREEN,
    }
    out.update(kwargs)
    return out


class AtariVec:
    """ale-py's ``AtariVectorEnv`` with the preprocessing above, for training or evaluation.

    A Gymnasium vector env (next-step autoreset) whose ``step`` info holds three
    arrays :class:`~kerasdojo.envs.wrappers.VecEnv` reads: ``raw_reward`` (the
    game's score, for episode statistics), ``reset_call`` (this call reset a
    finished game and ignored its action) and ``fire_forced`` (this call
    pressed FIRE after a lost life in place of the agent's action). In training
    a lost life terminates the episode without a reset: the game plays on.
    """

    def __init__(self, spec: Any, num_envs: int, training: bool, env_kwargs: dict[str, Any] | None = None) -> None:
        from ale_py.vector_env import AtariVectorEnv
        from gymnasium.vector import AutoresetMode

        s = settings(spec, env_kwargs)
        self.training = training
        self.env = AtariVectorEnv(
            s["game"],
            num_envs,
            repeat_action_probability=s["repeat_action_probability"],
            full_action_space=s["full_action_space"],
            max_num_frames_per_episode=s["max_num_frames_per_episode"],
            autoreset_mode=AutoresetMode.NEXT_STEP,
            img_height=s["screen_size"],
            img_width=s["screen_size"],
            grayscale=True,
            stack_num=s["stack_num"],
            frameskip=s["frameskip"],
            maxpool=True,
            noop_max=s["noop_max"],
            episodic_life=False,  # ale-py's restarts the whole game on a lost life
            life_loss_info=training,  # terminated on a lost life, the game goes on
            reward_clipping=False,  # clipped here, so that statistics see the raw score
            use_fire_reset=True,
        )
        self.num_envs = num_envs
        self.single_observation_space = self.env.single_observation_space
        self.single_action_space = self.env.single_action_space
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_fps": 60 // s["frameskip"]}
        self._done = np.zeros(num_envs, bool)
        self._frame = np.zeros(num_envs, np.int64)
        self._lives = np.zeros(num_envs, np.int64)
        self._fire_next = np.zeros(num_envs, bool)
        self._fire = fires(action_meanings(spec, s["full_action_space"]))

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._done[:] = False
        self._fire_next[:] = False
        self._frame[:] = info["episode_frame_number"]
        self._lives[:] = info["lives"]
        return obs, info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.array(actions, np.int32)
        forced = self._fire_next
        actions[forced] = FIRE
        obs, reward, terminated, truncated, info = self.env.step(actions)
        frame = np.asarray(info["episode_frame_number"], np.int64)
        lives = np.asarray(info["lives"], np.int64)
        # A finished game restarts on the next call (its frame count starts again); a lost life does not.
        reset_call = self._done & (frame < self._frame)
        forced = forced & ~reset_call  # the game had ended after all: the call restarted it
        self._done = np.logical_or(terminated, truncated)
        # A lost life in a game that goes on: the next call serves (FIRE) in place of the agent.
        self._fire_next = self._fire & (lives < self._lives) & (lives > 0) & ~truncated & ~reset_call
        self._frame, self._lives = frame, lives
        raw = np.asarray(reward, np.float64)
        info = {"raw_reward": raw, "reset_call": reset_call, "fire_forced": forced, "lives": lives}
        return obs, (np.sign(raw) if self.training else raw), terminated, truncated, info

    def render(self) -> None:
        raise DojoError("ale-py's vector env renders no frames; videos use a single env (make_single)")

    def close(self) -> None:
        self.env.close()


def _fire_reset_wrapper() -> Any:
    import cv2
    import gymnasium as gym

    class FireReset(gym.Wrapper):
        """ale-py's ``use_fire_reset`` on one env: after each reset (and its no-ops), one emulator
        frame of FIRE, whose screen replaces the reset observation (measured to match ale-py's
        vector env pixel for pixel); and the step after a lost life plays FIRE whatever the
        action, as :class:`AtariVec` does. Wraps ``AtariPreprocessing``."""

        def reset(self, **kwargs: Any) -> Any:
            obs, info = self.env.reset(**kwargs)
            ale = self.env.unwrapped.ale
            ale.act(FIRE)
            self._lives, self._fire_next = ale.lives(), False
            size = obs.shape[-1]
            return cv2.resize(ale.getScreenGrayscale(), (size, size), interpolation=cv2.INTER_AREA), info

        def step(self, action: Any) -> Any:
            obs, reward, terminated, truncated, info = self.env.step(FIRE if self._fire_next else action)
            lives = self.env.unwrapped.ale.lives()
            self._fire_next = 0 < lives < self._lives and not (terminated or truncated)
            self._lives = lives
            return obs, reward, terminated, truncated, info

    return FireReset


FIRE = 1  # the action index of FIRE in the games that need it


def fires(meanings: list[str]) -> bool:
    """Whether a game waits for FIRE to start (and to serve after a lost life): action 1 is FIRE."""
    return len(meanings) >= 3 and meanings[FIRE] == "FIRE"


def needs_fire(env: Any) -> bool:
    return fires(env.unwrapped.get_action_meanings())


def make_single(
    spec: Any, env_kwargs: dict[str, Any] | None = None, render_mode: str | None = None, noop_max: int | None = None
) -> Any:
    """One ALE env with the evaluation preprocessing from Gymnasium's wrappers (whole games, raw
    scores): what videos and ``--render`` play, and the reference for :class:`AtariVec`."""
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    s = settings(spec, env_kwargs)
    try:
        import cv2  # noqa: F401  (AtariPreprocessing resizes with OpenCV)
    except ImportError:
        raise DojoError(
            "recording or rendering an Atari game needs OpenCV",
            hint="install the atari extra: pip install -e '.[atari]'",
        ) from None
    env = gym.make(
        spec.id,
        frameskip=1,
        repeat_action_probability=s["repeat_action_probability"],
        full_action_space=s["full_action_space"],
        max_num_frames_per_episode=s["max_num_frames_per_episode"],
        render_mode=render_mode,
    )
    env = AtariPreprocessing(
        env,
        noop_max=s["noop_max"] if noop_max is None else noop_max,
        frame_skip=s["frameskip"],
        screen_size=s["screen_size"],
        terminal_on_life_loss=False,
        grayscale_obs=True,
        scale_obs=False,
    )
    if needs_fire(env):
        env = _fire_reset_wrapper()(env)
    env = FrameStackObservation(env, s["stack_num"], padding_type="zero")
    env.metadata = {**env.metadata, "render_fps": 60 // s["frameskip"]}  # one frame per agent step
    return env


def action_meanings(spec: Any, full_action_space: bool = False) -> list[str]:
    import gymnasium as gym

    env = gym.make(spec.id, full_action_space=full_action_space)
    try:
        return list(env.unwrapped.get_action_meanings())
    finally:
        env.close()


def games() -> list[str]:
    """The ``ALE/<Game>-v5`` ids, one per game ale-py ships."""
    import gymnasium as gym

    return sorted(k for k, s in gym.registry.items() if s.namespace == "ALE" and is_atari(s))
