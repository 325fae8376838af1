import pytest
from transformers import AutoConfig

import lrpe_hf  # noqa: F401  (registers model_type "lrpe")
from lrpe_hf.models.lrpe import PRESETS, SIZES, LrpeConfig


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_at_every_size(name, size):
    cfg = LrpeConfig.from_preset(name, size=size)
    assert cfg.model_type == "lrpe"
    for key, value in PRESETS[name].items():
        assert getattr(cfg, key) == value


def test_paper_sizes():
    lm = LrpeConfig.from_preset("lrpe-unitary-householder-learned", size="wikitext-base", vocab_size=1000)
    assert (lm.num_hidden_layers, lm.hidden_size, lm.intermediate_size, lm.num_attention_heads) == (6, 512, 2048, 8)
    assert lm.is_causal and lm.pre_norm and lm.head_dim == 64 and lm.vocab_size == 1000
    assert lm.lrpe_core == "unitary" and lm.lrpe_p == "householder" and lm.lrpe_theta_learned
    enc = LrpeConfig.from_preset("lrpe-rotation-householder-learned", size="roberta-base")
    assert (enc.num_hidden_layers, enc.hidden_size, enc.intermediate_size, enc.num_attention_heads) == (12, 768, 3072, 12)
    assert not enc.is_causal and not enc.pre_norm and enc.absolute_position_embedding == "learned"


def test_attention_norm_resolution():
    assert LrpeConfig(position_encoding="lrpe").resolved_attention_norm == "layernorm"
    assert LrpeConfig(position_encoding="lrpe_d").resolved_attention_norm == "layernorm"
    for pe in ("nope", "rope", "cosformer", "permuteformer"):
        assert LrpeConfig(position_encoding=pe).resolved_attention_norm == "denominator"
    assert LrpeConfig(position_encoding="rope", attention_norm="layernorm").resolved_attention_norm == "layernorm"


def test_auto_config_and_round_trip(tmp_path):
    cfg = AutoConfig.for_model("lrpe", vocab_size=77, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                               lrpe_core="permutation", lrpe_p="dct", use_cache=False)
    assert isinstance(cfg, LrpeConfig)
    cfg.save_pretrained(tmp_path)
    back = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(back, LrpeConfig)
    strip = lambda d: {k: v for k, v in d.items() if k != "_name_or_path"}  # noqa: E731
    assert strip(back.to_dict()) == strip(cfg.to_dict())
    assert back.use_cache is False and back.lrpe_core == "permutation" and back.lrpe_p == "dct"


@pytest.mark.parametrize(
    "field,value,allowed",
    [
        ("lrpe_core", "spiral", "rotation"),
        ("lrpe_p", "hadamard", "householder"),
        ("feature_map", "exp", "1+elu"),
        ("position_encoding", "alibi", "cosformer"),
        ("attention_type", "flash", "softmax"),
        ("attention_norm", "rmsnorm", "layernorm"),
        ("absolute_position_embedding", "rotary", "sinusoidal"),
        ("lrpe_theta_type", "z", "'a'"),
        ("classifier_pooling", "max", "mean"),
        ("hidden_act", "swish2", "gelu"),
    ],
)
def test_unknown_choice_names_field_and_allowed_values(field, value, allowed):
    with pytest.raises(ValueError) as err:
        LrpeConfig(**{field: value})
    msg = str(err.value)
    assert field in msg and repr(value) in msg and allowed in msg


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(position_encoding="lrpe", lrpe_core="rotation"),
        dict(position_encoding="lrpe", lrpe_core="mixed_rotation"),
        dict(position_encoding="rope"),
    ],
)
def test_odd_head_dim_rejected_where_pairs_are_rotated(kwargs):
    with pytest.raises(ValueError, match="even head dim.*head_dim=5"):
        LrpeConfig(hidden_size=10, num_attention_heads=2, **kwargs)
    # The unitary and permutation cores work on any head dim.
    LrpeConfig(hidden_size=10, num_attention_heads=2, lrpe_core="unitary")
    LrpeConfig(hidden_size=10, num_attention_heads=2, lrpe_core="permutation")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(hidden_size=30, num_attention_heads=4), "divisible"),
        (dict(lrpe_core="rotation", lrpe_p="fft"), "fft"),
        (dict(lrpe_core="permutation", lrpe_theta_learned=True), "lrpe_theta_learned"),
        (dict(attention_type="softmax", position_encoding="permuteformer"), "softmax"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_inconsistent_settings_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LrpeConfig(**kwargs)


def test_unknown_preset_and_size():
    with pytest.raises(ValueError, match="lrpe-unitary-householder"):
        LrpeConfig.from_preset("lrpe-foo")
    with pytest.raises(ValueError, match="wikitext-base"):
        LrpeConfig.from_preset("rope", size="huge")


@pytest.mark.parametrize("field,value,match", [
    ("num_attention_heads", 0, "num_attention_heads must be a positive int"),  # was a ZeroDivisionError
    ("hidden_size", "32", "hidden_size must be a positive int"),
    ("layer_norm_eps", -1, "layer_norm_eps must be a positive number"),  # was accepted: all-NaN logits
    ("lrpe_seed", "abc", "lrpe_seed must be a non-negative int"),  # was a TypeError at build time
    ("num_labels", 0, "num_labels must be a positive int"),
])
def test_bad_numbers_name_the_field(field, value, match):
    kwargs = dict(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    kwargs[field] = value
    with pytest.raises(ValueError, match=match):
        LrpeConfig(**kwargs)


def test_a_config_json_naming_another_model_type_is_reported_as_a_mismatch(tmp_path):
    """Editing model_type to another package type used to fail on the first unknown field
    ("attention_type='linear' is not supported")."""
    import json

    from transformers import AutoModel

    from lrpe_hf.models.lrpe import LrpeForCausalLM

    LrpeForCausalLM(LrpeConfig.from_preset("nope", size="tiny", vocab_size=40)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model_type"] = "lrpe_vit"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model_type 'lrpe_vit', but its architectures .* are 'lrpe' models"):
        AutoModel.from_pretrained(tmp_path)


def test_rope_denominator_is_unrotated_for_new_configs_and_rotated_for_configs_saved_before_the_field(tmp_path):
    """RoFormer's linear attention divides by q . sum k of the unrotated features (positive); the rotated
    denominator can cross zero (NaN in float16 at long context). Configs saved by lrpe_hf 0.1 used the rotated one."""
    assert LrpeConfig.from_preset("rope", size="tiny").rope_denominator == "unrotated"
    assert LrpeConfig(position_encoding="rope").rope_denominator == "unrotated"
    old = LrpeConfig.from_preset("rope", size="tiny").to_dict()
    old.pop("rope_denominator")
    old["lrpe_hf_version"] = "0.1.0"
    assert LrpeConfig.from_dict(old).rope_denominator == "rotated"
    cfg = LrpeConfig.from_preset("rope", size="tiny")
    cfg.save_pretrained(tmp_path)
    assert LrpeConfig.from_pretrained(tmp_path).rope_denominator == "unrotated"
    with pytest.raises(ValueError, match="rope_denominator='sideways'.*unrotated"):
        LrpeConfig(rope_denominator="sideways")
