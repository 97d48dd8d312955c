from __future__ import annotations

import dataclasses

import pytest

from kerasdojo import config
from kerasdojo.agents.dqn import DQNConfig
from kerasdojo.agents.ppo import PPOConfig
from kerasdojo.errors import DojoError
from kerasdojo.training.spec import resolve_config


def test_apply_parses_strings_to_field_types() -> None:
    cfg = config.apply(
        PPOConfig(),
        {
            "learning_rate": "1e-3",
            "n_steps": "1_024",
            "net_arch": "128,128",
            "normalize_obs": "yes",
            "total_steps": "2e5",
            "lr_schedule": "linear",
        },
    )
    assert cfg.learning_rate == 1e-3
    assert cfg.n_steps == 1024 and isinstance(cfg.n_steps, int)
    assert cfg.net_arch == (128, 128)
    assert cfg.normalize_obs is True
    assert cfg.total_steps == 200_000
    assert cfg.lr_schedule == "linear"


def test_apply_accepts_typed_values_and_json_lists() -> None:
    cfg = config.apply(DQNConfig(), {"net_arch": [256, 256], "double_q": False, "tau": 1})
    assert cfg.net_arch == (256, 256) and cfg.double_q is False and cfg.tau == 1.0
    assert config.apply(DQNConfig(), {"net_arch": "[32, 16]"}).net_arch == (32, 16)


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PPOConfig().gamma = 0.5  # type: ignore[misc]


def test_unknown_key_names_key_and_lists_valid_ones() -> None:
    with pytest.raises(DojoError) as err:
        config.apply(PPOConfig(), {"lr": "0.1"})
    assert "'lr'" in str(err.value)
    assert "did you mean learning_rate" in err.value.hint
    assert "n_epochs" in err.value.hint


def test_close_match_suggested() -> None:
    with pytest.raises(DojoError) as err:
        config.apply(PPOConfig(), {"n_epoch": "3"})
    assert "did you mean n_epochs" in err.value.hint


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("learning_rate", "abc", "expected a number"),
        ("n_steps", "2.5", "expected an integer"),
        ("normalize_obs", "maybe", "true or false"),
        ("gamma", "1.5", "must be <= 1"),
        ("n_steps", "0", "must be >= 1"),
        ("learning_rate", "0", "must be > 0"),
        ("lr_schedule", "cosine", "valid values: constant, linear"),
        ("net_arch", "64,-1", "must be >= 1"),
        ("net_arch", "[64,64", "net_arch"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str, fragment: str) -> None:
    with pytest.raises(DojoError) as err:
        config.apply(PPOConfig(), {key: value})
    text = err.value.one_line()
    assert key in text and fragment in text


def test_parse_set_requires_key_value() -> None:
    assert config.parse_pairs(["a=1", "b-c = x=y"]) == {"a": "1", "b_c": "x=y"}
    with pytest.raises(DojoError, match="key=value"):
        config.parse_pairs(["gamma"])


def test_load_toml_flattens_tables(tmp_path) -> None:
    path = tmp_path / "ppo.toml"
    path.write_text("learning_rate = 0.001\n[ppo]\nn_steps = 64\nnet_arch = [32, 32]\n")
    assert config.load_toml(path) == {"learning_rate": 0.001, "n_steps": 64, "net_arch": [32, 32]}
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rate = = 1")
    with pytest.raises(DojoError, match="not valid TOML"):
        config.load_toml(bad)
    with pytest.raises(DojoError, match="not found"):
        config.load_toml(tmp_path / "missing.toml")


def test_json_round_trip() -> None:
    cfg = config.apply(PPOConfig(), {"net_arch": "16,8", "clip_range_vf": "0.3"})
    assert config.from_dict(PPOConfig, config.to_dict(cfg)) == cfg


def test_precedence_defaults_preset_overrides_flags() -> None:
    default = PPOConfig()
    preset = resolve_config("ppo", "CartPole-v1", {})
    assert preset.n_steps == 32 and preset.n_envs == 8 and default.n_steps != 32
    overridden = resolve_config("ppo", "CartPole-v1", {"n_steps": "64", "total_steps": 5000}, total_steps=9000)
    assert overridden.n_steps == 64  # --set beats the preset
    assert overridden.total_steps == 9000  # --steps beats --set
    assert overridden.gae_lambda == 0.8  # preset kept where not overridden
    assert resolve_config("ppo", "Some-Unknown-v0", {}) == default


def test_describe_has_help_for_every_field() -> None:
    for cls in (PPOConfig, DQNConfig):
        for info in config.describe(cls):
            assert info.help, f"{cls.__name__}.{info.name} has no help text"


def test_one_parser_one_rule_set_for_set_and_env_kwargs() -> None:
    """--set and --env-kwargs split pairs the same way and read booleans with the same words."""
    for word, value in (("yes", True), ("on", True), ("true", True), ("no", False), ("OFF", False)):
        assert config.parse_kwargs([f"flag={word}"]) == {"flag": value}
        assert config.apply(PPOConfig(), config.parse_pairs([f"ortho_init={word}"])).ortho_init is value
    assert config.parse_kwargs(["max-episode-steps=200"]) == {"max_episode_steps": 200}
    for flag, parse in (("--set", config.parse_pairs), ("--env-kwargs", config.parse_kwargs)):
        with pytest.raises(DojoError) as err:
            parse(["=3"], flag)
        assert err.value.message == f"Expected key=value. Received: {flag} '=3'"
    with pytest.raises(DojoError, match="expected true or false"):
        config.apply(PPOConfig(), {"ortho_init": "maybe"})
