"""The registry of position encodings: one interface for every encoding, one class and one entry to add one."""

import pytest
import torch

from lrpe_hf.layers.position_encoding import (
    POSITION_ENCODINGS,
    PositionEncoding,
    build_position_encoding,
    check_lrpe_options,
    register_position_encoding,
)
from lrpe_hf.models.lrpe import LrpeConfig, LrpeForCausalLM

OPTIONS = dict(core="unitary", p="householder", max_positions=64, seed=1, layer_idx=1, num_layers=2)


def test_every_paper_encoding_is_registered():
    assert set(POSITION_ENCODINGS) >= {"nope", "rope", "cosformer", "permuteformer", "lrpe", "lrpe_d"}


@pytest.mark.parametrize("name", sorted(POSITION_ENCODINGS))
def test_one_interface_output_dim_decay_and_float32_position_tensors(name):
    enc = build_position_encoding(name, 8, 2, **OPTIONS)
    x = torch.randn(3, 2, 5, 8)
    out = enc(x, torch.arange(5)[None, None, :])
    assert out.shape == (3, 2, 5, enc.output_dim)
    assert enc.decay is None or enc.decay.shape == (2,)
    assert enc.name == name and isinstance(enc, PositionEncoding)
    enc = enc.to(torch.bfloat16)  # position tensors stay float32 (angles s * theta at long context)
    assert all(t.dtype in (torch.float32, torch.int64) for t in [*enc.parameters(), *enc.buffers()])
    # initial_tensors names real tensors of the module, with their shapes
    for key, value in enc.initial_tensors().items():
        assert getattr(enc, key).shape == value.shape


def test_options_a_class_does_not_take_are_left_out_and_unknown_names_refused():
    enc = build_position_encoding("rope", 8, 2, core="permutation", seed=3)  # LRPE options: not RoPE's
    assert enc.output_dim == 8
    with pytest.raises(ValueError, match="'alibi' is not registered.*lrpe"):
        build_position_encoding("alibi", 8, 2)


def test_a_new_encoding_is_one_class_and_one_entry():
    @register_position_encoding("scaled_nope")
    class ScaledNoPE(PositionEncoding):
        options = ("scale",)

        def __init__(self, head_dim, num_heads=1, *, scale=1.0):
            super().__init__(head_dim, num_heads)
            self.scale = scale

        def forward(self, x, positions, grid=None):
            return self.scale * x

    try:
        config = LrpeConfig.from_preset("nope", size="tiny", vocab_size=32, position_encoding="scaled_nope")
        model = LrpeForCausalLM(config).eval()
        assert isinstance(model.model.layers[0].self_attn.position_encoding, ScaledNoPE)
        ids = torch.randint(0, 32, (1, 6))
        with torch.no_grad():
            out = model(ids).logits
        assert out.shape == (1, 6, 32) and torch.isfinite(out).all()
        with pytest.raises(ValueError, match="already registered"):
            register_position_encoding("scaled_nope")(ScaledNoPE)
    finally:
        POSITION_ENCODINGS.pop("scaled_nope")
    with pytest.raises(ValueError, match="position_encoding='scaled_nope' is not supported"):
        LrpeConfig(position_encoding="scaled_nope")


@pytest.mark.parametrize("kwargs,match", [
    (dict(core="spiral", p="identity"), r"X\.lrpe_core='spiral' is not supported"),
    (dict(core="rotation", p="fft"), "fft"),
    (dict(core="permutation", p="identity", theta_learned=True), "learned theta"),
    (dict(core="unitary", p="identity", theta_type="b"), "rotation' only"),
    (dict(core="permutation", p="identity", mode_2d="separable"), "separable"),
    (dict(core="unitary", p="identity", mode_2d="diagonal"), "2d_mode='diagonal'"),
])
def test_lrpe_options_are_validated_in_one_place_with_the_callers_names(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_lrpe_options(owner="X", prefix="lrpe_", **kwargs)


def test_each_value_alone_is_checked_where_the_layers_do_not_use_lrpe():
    # A RoPE config keeps an unused LRPE combination (as saved checkpoints may); values are still checked.
    check_lrpe_options("permutation", "identity", theta_learned=True, combinations=False)
    with pytest.raises(ValueError, match="spiral"):
        check_lrpe_options("spiral", "identity", combinations=False)
