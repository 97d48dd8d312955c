"""Record one episode of an agent as a video (GIF, or MP4 with the ``video`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kerasdojo import envs as envs_mod
from kerasdojo.envs.video import check_video_path, write_video
from kerasdojo.training.evaluation import Actor, evaluation_rng

MAX_FRAMES = 5000


def check_rgb_array(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Fail before training when an episode of ``env_id`` cannot be recorded."""
    from kerasdojo.errors import DojoError

    env = envs_mod.make_env(env_id, env_kwargs)
    try:
        modes = env.metadata.get("render_modes", [])
    finally:
        env.close()
    if "rgb_array" not in modes:
        raise DojoError(
            f"{env_id} cannot render frames (its render modes: {', '.join(modes) or 'none'})",
            hint="train without --video",
        )


def record_episode(
    agent: Any,
    env_id: str,
    env_kwargs: dict[str, Any],
    normalizer_state: dict[str, Any] | None,
    seed: int,
    path: Path,
    deterministic: bool = True,
    atari: bool = True,
) -> tuple[Path, float]:
    """Play one episode with frames rendered as rgb_array and write them to ``path``; returns
    the path and the episode's return. ``normalizer_state``: the observation statistics the
    agent was trained with (None when it used none). Atari games (with ``atari``, the
    preprocessing) play a whole game with raw scores; the video shows the game's colour
    frames, not the 84x84 gray ones the agent sees."""
    path = check_video_path(path)
    env = envs_mod.make_vec(
        env_id,
        1,
        env_kwargs=env_kwargs,
        normalize_obs=normalizer_state is not None,
        render_mode="rgb_array",
        atari_wrapper=atari,
        training=False,
    )
    if normalizer_state is not None:
        env.normalizer.load_state(normalizer_state)
    env.normalizer.training = False
    try:
        with evaluation_rng(agent, seed):
            obs = env.reset(seed=seed)
            frames = [env.render_frame()]
            total = 0.0
            actor = Actor(agent, env)
            while True:
                obs, reward, terminated, truncated, _ = actor.step(obs, deterministic)
                total += float(reward[0])
                frames.append(env.render_frame())
                if terminated[0] or truncated[0] or len(frames) > MAX_FRAMES:
                    break
            fps = env.metadata_fps()
    finally:
        env.close()
    write_video(path, frames, fps)
    return path, total
