"""Making environments: any registered Gymnasium id or ``module:Class`` entry point.

* :func:`make_vec` builds the vector environment agents train on (Gymnasium's
  own vectorised implementation when an env has one and there are 2 envs or
  more, e.g. CartPole, else ``SyncVectorEnv``; ``AsyncVectorEnv`` with
  ``async_=True``), wrapped in
  :class:`~kerasdojo.envs.wrappers.VecEnv` for episode statistics, observation
  encoding and optional normalisation (Gymnasium's vector wrappers, subclassed
  where SB3's conventions need it).
* :func:`make_env` builds one environment (for videos and rendering).
* :func:`describe` and :func:`list_envs` back ``kerasdojo envs``.

ALE ids (Atari) get the standard Atari preprocessing by default, run by
ale-py's vector env (:mod:`kerasdojo.envs.atari`); ``atari_wrapper=False``
gives the raw frames.

Unknown ids suggest the closest registered ones; environments whose optional
dependency is missing name the extra to install. Gymnasium-Robotics ids (the ``robotics``
extra) are registered on demand, as MiniGrid's: when an id is not found, or ids are listed.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import io
import os
import signal
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from kerasdojo.errors import DojoError

# Which kerasdojo extra provides the dependency of each family of environments.
EXTRAS = {
    "gymnasium.envs.box2d": ("box2d", "Box2D"),
    "gymnasium.envs.mujoco": ("mujoco", "MuJoCo"),
    "ale_py": ("atari", "the Arcade Learning Environment"),
    "shimmy": ("atari", "the Arcade Learning Environment"),
    "minigrid": ("minigrid", "MiniGrid"),
    "gymnasium_robotics": ("robotics", "Gymnasium-Robotics"),
}
MINIGRID_PREFIXES = ("MiniGrid-", "BabyAI-")  # registered by importing minigrid (the minigrid extra)
# Ids of Gymnasium-Robotics (the robotics extra), named when it is missing.
ROBOTICS_PREFIXES = ("Fetch", "HandReach", "HandManipulate", "AdroitHand", "PointMaze", "AntMaze", "FrankaKitchen")


def _register_minigrid(gym: Any) -> bool:
    """Register MiniGrid's and BabyAI's ids (importing minigrid does it); False when not installed."""
    try:
        import minigrid  # noqa: F401
    except ImportError:
        return False
    return True


def _register_robotics(gym: Any) -> bool:
    """Register Gymnasium-Robotics' ids (importing it does it); False when not installed. On demand:
    the import (MuJoCo with it) costs 0.15 s, and it re-registers some of Gymnasium's MuJoCo v2/v3 ids."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # it prints a notice about its Adroit ids
            import gymnasium_robotics
    except Exception:  # not installed, or a MuJoCo it cannot load
        return False
    gym.register_envs(gymnasium_robotics)
    return True


def _gym() -> Any:
    # pygame (classic-control rendering) initialises audio too; no sound device here is normal.
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    import gymnasium

    _register_optional(gymnasium)
    return gymnasium


_registered_optional = False


def _register_optional(gym: Any) -> None:
    """Register kerasdojo's NoVel ids, and Atari ids when ale-py is installed (Gymnasium 1.x no
    longer does it itself)."""
    global _registered_optional
    if _registered_optional:
        return
    _registered_optional = True
    from kerasdojo.envs import partial

    partial.register(gym.registry)  # CartPoleNoVel-v1 and the other RL Zoo ids, velocities hidden
    try:
        import ale_py

        gym.register_envs(ale_py)
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no start-up banner
    except Exception:  # not installed, or an old version: Atari ids stay unknown
        pass


def is_registered(env_id: str) -> bool:
    gym = _gym()
    if env_id.startswith(MINIGRID_PREFIXES):
        _register_minigrid(gym)
    if env_id not in gym.registry and ":" not in env_id:
        _register_robotics(gym)
    return env_id in gym.registry


def resolve(env_id: str) -> Any:
    """The :class:`gymnasium.envs.registration.EnvSpec` for an id or ``module:attr`` entry point."""
    gym = _gym()
    if env_id.startswith(MINIGRID_PREFIXES) and env_id not in gym.registry and not _register_minigrid(gym):
        _missing_extra("minigrid", env_id)
    if env_id not in gym.registry and ":" not in env_id and not _register_robotics(gym):
        if env_id.startswith(ROBOTICS_PREFIXES):
            _missing_extra("gymnasium_robotics", env_id)
    if env_id in gym.registry:
        return gym.spec(env_id)
    if ":" in env_id and not env_id.startswith("ALE/"):
        module, _, attr = env_id.partition(":")
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # ImportError, or any error raised while the module loads
            raise DojoError(f"Cannot import {module} for entry point {env_id}: {type(exc).__name__}: {exc}") from None
        if not hasattr(mod, attr):
            raise DojoError(f"{module} has no attribute {attr!r} (entry point {env_id})")
        from gymnasium.envs.registration import EnvSpec

        return EnvSpec(id=attr, entry_point=env_id)
    if env_id.startswith("ALE/"):
        _missing_extra("ale_py", env_id)
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
    hint = ("did you mean " + ", ".join(close) + "? " if close else "") + "kerasdojo envs lists them all"
    raise DojoError(f"Unknown environment id {env_id!r}", hint=hint)


def _entry_module(spec: Any) -> str:
    entry = spec.entry_point
    return entry.split(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")


def _missing_extra(module: str, env_id: str) -> None:
    for prefix, (extra, what) in EXTRAS.items():
        if module.startswith(prefix):
            if "." not in prefix and importlib.util.find_spec(prefix) is not None:
                return  # installed: what is missing is another package (FetchReach-v1's mujoco_py)
            raise DojoError(
                f"{env_id} needs {what}, which is not installed",
                hint=f"install the {extra} extra: pip install -e '.[{extra}]' in the kerasdojo checkout",
            )


def _creation_error(spec: Any, exc: Exception) -> DojoError:
    """Map an exception from making an env to a one-line error (missing extra, bad kwargs)."""
    module = _entry_module(spec)
    cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, ImportError) or type(exc).__name__ == "DependencyNotInstalled":
        _missing_extra(module, spec.id)
        return DojoError(f"{spec.id} needs a package that is not installed: {cause}")
    if isinstance(exc, TypeError) and "argument" in cause:
        return DojoError(f"{spec.id} does not accept these --env-kwargs: {cause}")
    return DojoError(f"Could not make {spec.id}: {type(exc).__name__}: {cause}")


@contextlib.contextmanager
def _workers_ignore_sigint(active: bool) -> Iterator[None]:
    """Start AsyncVectorEnv workers with Ctrl-C ignored: the trainer handles it in the main
    process (checkpoint, then exit), and workers that died of it would break the env first."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _render_mode(mode: str) -> str:
    if mode == "rgb_array" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen; no window system needed
    return mode


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, render_mode: str | None = None) -> Any:
    """One environment (no vectorisation)."""
    gym = _gym()
    spec = resolve(env_id)
    kwargs = dict(env_kwargs or {})
    if kwargs and _is_atari(spec):  # validated here; the preprocessing's own keys are not AtariEnv's
        from kerasdojo.envs import atari

        atari.settings(spec, kwargs)
        kwargs = {k: v for k, v in kwargs.items() if k not in atari.PREPROCESSING_KWARGS}
    if render_mode is not None:
        kwargs["render_mode"] = _render_mode(render_mode)
    try:
        return gym.make(spec, **kwargs)
    except DojoError:
        raise
    except Exception as exc:
        raise _creation_error(spec, exc) from None


def make_vec(
    env_id: str,
    n_envs: int,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    async_: bool = False,
    normalize_obs: bool = False,
    normalize_reward: bool = False,
    gamma: float = 0.99,
    render_mode: str | None = None,
    atari_wrapper: bool = True,
    training: bool = True,
) -> Any:
    """A :class:`~kerasdojo.envs.wrappers.VecEnv` of ``n_envs`` copies, reset with ``seed``.

    ``render_mode`` ("rgb_array" for videos, "human" for a window) uses
    ``SyncVectorEnv`` so each copy renders itself. ALE ids get the Atari
    preprocessing unless ``atari_wrapper`` is False; ``training`` chooses its
    training conventions (a lost life ends an episode, clipped rewards) or its
    evaluation ones (whole games, raw scores)."""
    from kerasdojo.envs.wrappers import VecEnv

    spec = resolve(env_id)
    if atari_wrapper and _is_atari(spec):
        vec = _make_atari_vec(spec, n_envs, env_kwargs, render_mode, training)
    else:
        vec = _make_gym_vec(spec, n_envs, env_kwargs, async_, render_mode)
    env = VecEnv(vec, normalize_obs=normalize_obs, normalize_reward=normalize_reward, gamma=gamma)
    env.reset(seed=seed)
    return env


def _make_gym_vec(
    spec: Any, n_envs: int, env_kwargs: dict[str, Any] | None, async_: bool, render_mode: str | None
) -> Any:
    """Gymnasium's vector env: the env's own vectorised implementation when it has one, else
    ``SyncVectorEnv`` (``AsyncVectorEnv`` with ``async_``; sync when rendering)."""
    gym = _gym()
    kwargs = dict(env_kwargs or {})
    # ALE ids without the preprocessing: raw frames from single envs (ale-py's vector env preprocesses).
    # One env steps faster alone (CartPole: 15.7 us a step, 44.6 us in its vectorised implementation), same trajectory.
    native_vec = spec.vector_entry_point and not _is_atari(spec) and n_envs > 1
    modes = ["async"] if async_ else (["vector_entry_point", "sync"] if native_vec else ["sync"])
    if render_mode is not None:
        kwargs["render_mode"] = _render_mode(render_mode)
        modes = ["sync"]
    for i, mode in enumerate(modes):
        try:
            with _workers_ignore_sigint(mode == "async"):
                vec = gym.make_vec(spec, num_envs=n_envs, vectorization_mode=mode, **kwargs)
            break
        except DojoError:
            raise
        except TypeError as exc:
            if i + 1 < len(modes):  # the vectorised implementation takes fewer kwargs: use SyncVectorEnv
                continue
            raise _creation_error(spec, exc) from None
        except Exception as exc:
            raise _creation_error(spec, exc) from None
    return vec


def _is_atari(spec: Any) -> bool:
    from kerasdojo.envs.atari import is_atari

    return is_atari(spec)


def samples_in_evaluation(env_id: str, atari_wrapper: bool = True) -> bool:
    """Whether evaluation samples actions by default: on Atari games with the preprocessing,
    as RL Zoo evaluates them. A greedy agent can stall there, in a state where its best action
    changes nothing, and play on to the 108,000-frame cap."""
    return atari_wrapper and _is_atari(resolve(env_id))


def _make_atari_vec(
    spec: Any, n_envs: int, env_kwargs: dict[str, Any] | None, render_mode: str | None, training: bool
) -> Any:
    from kerasdojo.envs import atari

    try:
        if render_mode is None:
            return atari.AtariVec(spec, n_envs, training, env_kwargs)
        gym = _gym()
        mode = _render_mode(render_mode)
        return gym.vector.SyncVectorEnv([lambda: atari.make_single(spec, env_kwargs, mode) for _ in range(n_envs)])
    except DojoError:
        raise
    except Exception as exc:
        raise _creation_error(spec, exc) from None


def describe_space(space: Any, indent: str = "") -> str:
    """``Discrete(2)`` or ``Box(4,) float32 low=[...] high=[...]``; a Dict or Tuple one line per
    item (``key: ...``), nested items indented."""
    from gymnasium import spaces

    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        lines = [f"{type(space).__name__} of {len(space.spaces)}:"]
        for key, sub in items:
            name = key if isinstance(space, spaces.Dict) else f"[{key}]"
            lines.append(f"{indent}  {name}: {describe_space(sub, indent + '  ')}")
        return "\n".join(lines)
    if isinstance(space, spaces.Box):
        text = f"Box{space.shape} {space.dtype}"
        if space.low.size <= 8:
            fmt = lambda a: "[" + ", ".join(f"{v:.3g}" for v in a.reshape(-1)) + "]"  # noqa: E731
            text += f" low={fmt(space.low)} high={fmt(space.high)}"
        else:
            text += f" in [{space.low.min():.3g}, {space.high.max():.3g}]"
        return text
    return str(space)


def spaces_of(env_id: str, env_kwargs: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """(observation space, action space) of one environment, made and closed again."""
    env = make_env(env_id, env_kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def describe(env_id: str) -> dict[str, Any]:
    """Spaces and limits of an environment, as rows for ``kerasdojo envs ID``."""
    spec = resolve(env_id)
    obs_space, act_space = spaces_of(env_id)
    rows = {
        "id": spec.id,
        "entry point": spec.entry_point if isinstance(spec.entry_point, str) else repr(spec.entry_point),
        "action space": describe_space(act_space),
        "observation space": describe_space(obs_space),
        "reward threshold": spec.reward_threshold,
        "max episode steps": spec.max_episode_steps,
        "vectorised implementation": "yes, from 2 envs" if spec.vector_entry_point else "no (SyncVectorEnv)",
    }
    rows["agents see"] = _agents_see(obs_space)
    if _is_atari(spec):
        from kerasdojo.envs import atari

        rows["vectorised implementation"] = "ale-py's AtariVectorEnv (C++ threads)"
        rows["action meanings"] = ", ".join(f"{i} {m}" for i, m in enumerate(atari.action_meanings(spec)))
        rows["agents see"] = (
            f"Box({atari.STACK}, {atari.SCREEN}, {atari.SCREEN}) uint8: {atari.STACK} stacked 84x84 gray frames, "
            f"frame skip {atari.FRAMESKIP} (--set atari_wrapper=false: raw frames)"
        )
        rows["sticky actions"] = f"repeat_action_probability={spec.kwargs.get('repeat_action_probability', 0.25)}"
    return rows


def _agents_see(obs_space: Any) -> str:
    """What kerasdojo's agents get of an observation space (its leaves, encoded), or why nothing."""
    from kerasdojo.observations import ObsSpec

    try:
        spec = ObsSpec.of(obs_space)
    except DojoError as exc:
        return f"nothing: {exc}"
    text = spec.describe() if spec.nested else f"{spec.leaves[0].shape} {spec.leaves[0].dtype.name}"
    if spec.nested:
        text = f"one input per leaf: {text}"
    return text + ("".join(f"; left out: {name} (Text)" for name in spec.skipped))


def _family(spec: Any) -> str:
    if spec.namespace:
        return spec.namespace
    module = _entry_module(spec)
    parts = module.split(".")
    if module.startswith("gymnasium.envs.") and len(parts) > 2:
        return parts[2]
    return parts[0] or "other"


def list_envs(filter_: str | None = None) -> dict[str, list[str]]:
    """Registered ids grouped by family (classic_control, box2d, ...), optionally filtered."""
    gym = _gym()
    groups: dict[str, list[str]] = defaultdict(list)
    if (filter_ or "").lower() in ("atari", "ale"):
        from kerasdojo.envs.atari import games

        return {"ALE (Atari)": games()} if games() else {}
    needle = (filter_ or "").lower()
    _register_minigrid(gym)
    _register_robotics(gym)
    for env_id, spec in gym.registry.items():
        family = _family(spec)
        if needle and needle not in env_id.lower() and needle not in family.lower():
            continue
        groups[family].append(env_id)
    return {k: sorted(v) for k, v in sorted(groups.items())}
