import json

import pytest

from lrpe_hf.training.smoothing import SmoothingTrainingConfig, train_smoothing


def test_staged_schedule_runs_through_trainer_and_saves(tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageToImage

    cfg = SmoothingTrainingConfig(
        output_dir=str(tmp_path / "model"), preset="tiny", num_train=16, num_validation=8, num_test=8, image_size=24,
        stage_steps={"tpn": 2, "spn": 2, "filter": 2, "joint": 2}, batch_size=4, eval_batch_size=8, logging_steps=1,
    )
    results = train_smoothing(cfg)
    assert set(results["stages"]) == {"tpn", "spn", "filter", "joint"}
    for split in ("validation", "test"):
        assert 0 < results[split][f"{split}_psnr"] < 100 and -1 <= results[split][f"{split}_ssim"] <= 1
    saved = json.loads((tmp_path / "model" / "train_results.json").read_text())
    assert saved["test"] == results["test"]
    assert type(AutoModelForImageToImage.from_pretrained(tmp_path / "model")).__name__ == "DgfnForImageSmoothing"
    AutoImageProcessor.from_pretrained(tmp_path / "model")
    assert (tmp_path / "model-dataset" / "dataset_dict.json").exists()


def test_bad_stage_names_are_rejected():
    with pytest.raises(ValueError, match="unknown stages"):
        SmoothingTrainingConfig(stage_steps={"tsafn": 1})


def test_training_continues_from_a_saved_model_with_new_loss_weights(tmp_path):
    import torch

    from lrpe_hf.models.dgfn import DgfnForImageSmoothing

    common = dict(num_train=16, num_validation=8, num_test=8, image_size=24, batch_size=4, eval_batch_size=8)
    # a non-preset field in the first model's config shows that the second run starts from it, not from a preset
    train_smoothing(SmoothingTrainingConfig(output_dir=str(tmp_path / "first"), preset="tiny",
                                            config_overrides={"tpn_resample": "nearest"},
                                            stage_steps={"tpn": 0, "spn": 0, "filter": 2, "joint": 0}, **common))
    first = DgfnForImageSmoothing.from_pretrained(tmp_path / "first")
    train_smoothing(SmoothingTrainingConfig(
        output_dir=str(tmp_path / "second"), model_name_or_path=str(tmp_path / "first"),
        dataset_dir=str(tmp_path / "first-dataset"), config_overrides={"loss_weight_spn": 0.0},
        stage_steps={"tpn": 0, "spn": 0, "filter": 0, "joint": 2}, **common,
    ))
    second = DgfnForImageSmoothing.from_pretrained(tmp_path / "second")
    assert second.config.loss_weight_spn == 0.0 and first.config.loss_weight_spn == 0.2
    assert second.config.tpn_resample == "nearest"
    # (weights cannot show this: a fresh preset model gets the same seeded initialisation as the first run's)
    # the texture network was untouched by the first run (filter stage) and trained by the second (joint)
    assert not torch.equal(first.texture_network.fuse.weight, second.texture_network.fuse.weight)
    # the structure network got no loss of its own but the reconstruction still trains it through the guidance
    assert not torch.equal(first.structure_network.fuse.weight, second.structure_network.fuse.weight)


def test_continuing_into_the_starting_directory_is_refused(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(ValueError, match="starting model is not overwritten"):
        SmoothingTrainingConfig(output_dir=str(tmp_path / "model" / "."), model_name_or_path=str(tmp_path / "model"))


def test_cli_refuses_a_non_empty_output_dir_and_trains_with_overwrite(tmp_path, capsys):
    """`lrpe-hf train smoothing` = scripts/train_smoothing.py: nothing the user owns is written over without
    --overwrite_output_dir."""
    from lrpe_hf.cli import main

    out = tmp_path / "dgfn"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["train", "smoothing", "--output_dir", str(out), "--preset", "tiny", "--num_train", "8",
            "--num_validation", "4", "--num_test", "4", "--image_size", "24", "--batch_size", "4",
            "--steps", "0,0,1,0"]
    assert main(argv) == 1
    assert "not empty" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"
    assert main(argv + ["--overwrite_output_dir"]) == 0
    assert (out / "train_results.json").is_file() and (out / "notes.txt").read_text() == "mine"
