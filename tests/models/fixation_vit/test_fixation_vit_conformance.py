"""Conformance to outputs of the official implementation (fixtures produced by its modules)."""

import os
from pathlib import Path

import pytest
import torch

from lrpe_hf.models.fixation_vit import FixationViTConfig, FixationViTForVideoClassification, FixationViTLayer
from lrpe_hf.models.fixation_vit.convert import (
    convert_block_state_dict,
    convert_state_dict,
    join_official_state_dicts,
    load_converted,
)

# CI checks the repository out beside a `shared` folder; LRPE_HF_FIXTURES overrides the location.
FIXTURES = Path(
    os.environ.get("LRPE_HF_FIXTURES", Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "fixtures")
)


def _fixture(name):
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"official-output fixture {name} not found in {FIXTURES} (set LRPE_HF_FIXTURES to its folder)")
    return torch.load(path, weights_only=True)


def _block_config(fx):
    c = fx["config"]
    return FixationViTConfig(
        hidden_size=c["dim"], num_attention_heads=c["num_heads"], intermediate_size=4 * c["dim"], num_frames=c["T"],
        num_hidden_layers=1, image_size=48, temporal_shift_div=c["temporal_shift_n_div"],
        spatial_shift_size=c["spatial_shift_size"], linear_attention_eps=c["eps"], layer_norm_eps=c["ln_eps"],
        num_time_embeddings=c["T"],
    )


def test_block_fixture():
    fx = _fixture("lvt_block_fixture.pt")
    c = fx["config"]
    layer = FixationViTLayer(_block_config(fx)).eval()
    load_converted(layer, convert_block_state_dict(fx["state_dict"]))
    captured = {}
    layer.temporal_attention.register_forward_hook(lambda m, i, o: captured.__setitem__("temporal", o[0]))
    layer.spatial_attention.register_forward_hook(lambda m, i, o: captured.__setitem__("spatial", o[0]))
    with torch.no_grad():
        out, _, _ = layer(fx["input"], batch_size=c["B"], height=c["H"], width=c["W"])
    torch.testing.assert_close(captured["temporal"], fx["temporal_attn_out"], atol=1e-5, rtol=0)
    torch.testing.assert_close(captured["spatial"], fx["spatial_attn_out"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out, fx["output"], atol=1e-5, rtol=0)


def _small_model(fx, tmp_path=None):
    c = fx["config"]
    config = FixationViTConfig(
        image_size=c["img"], patch_size=c["patch"], patch_stride=c["stride"], patch_padding=c["padding"],
        hidden_size=c["embed_dim"], num_attention_heads=c["num_heads"], num_hidden_layers=c["depth"],
        intermediate_size=4 * c["embed_dim"], num_frames=c["num_frames"], num_time_embeddings=c["num_frames"],
        temporal_shift_div=c["temporal_shift_n_div"], spatial_shift_size=c["spatial_shift_size"],
        classifier_hidden_size=c["head_mlp_dim"], num_labels=c["num_classes"],
    )
    assert config.grid_size == c["grid"]
    checkpoint = {"model_state": join_official_state_dicts(fx["backbone_state_dict"], fx["head_state_dict"])}
    checkpoint["model_state"]["new_fc.weight"] = torch.zeros(c["num_classes"], c["embed_dim"])  # dropped
    model = FixationViTForVideoClassification(config)
    load_converted(model, convert_state_dict(checkpoint))
    return model.eval()


def _check_small_model_outputs(model, fx):
    with torch.no_grad():
        out = model(pixel_values=fx["pixel_values"], output_hidden_states=False)
        hidden = model.fixation_vit(pixel_values=fx["pixel_values"]).last_hidden_state
    b, t = fx["pixel_values"].shape[:2]
    frame_features = hidden.view(b * t, -1, hidden.shape[-1]).mean(1)
    torch.testing.assert_close(frame_features, fx["frame_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.logits, fx["logits"], atol=1e-5, rtol=0)


def test_small_model_fixture():
    fx = _fixture("lvt_small_model_fixture.pt")
    _check_small_model_outputs(_small_model(fx), fx)


def test_converter_script_output_folder_reproduces_fixture(tmp_path):
    """scripts/convert_lvt_checkpoint.py path: checkpoint file + config JSON -> save_pretrained folder -> Auto load."""
    import json

    from transformers import AutoImageProcessor, AutoModelForVideoClassification

    from lrpe_hf.models.fixation_vit.convert import convert_checkpoint

    fx = _fixture("lvt_small_model_fixture.pt")
    model = _small_model(fx)
    ckpt = tmp_path / "official.pyth"
    torch.save({"model_state": {"module." + k: v for k, v in
                                join_official_state_dicts(fx["backbone_state_dict"], fx["head_state_dict"]).items()}},
               ckpt)
    config_json = tmp_path / "config.json"
    config_json.write_text(json.dumps(model.config.to_diff_dict()))
    out_dir = tmp_path / "converted"
    from lrpe_hf.models.fixation_vit.convert import config_from_json

    convert_checkpoint(ckpt, config_from_json(config_json), out_dir)
    loaded = AutoModelForVideoClassification.from_pretrained(out_dir).eval()
    assert isinstance(loaded, FixationViTForVideoClassification)
    _check_small_model_outputs(loaded, fx)
    processor = AutoImageProcessor.from_pretrained(out_dir)
    assert type(processor).__name__ == "FixationViTImageProcessor"
    assert processor.num_frames == fx["config"]["num_frames"]
