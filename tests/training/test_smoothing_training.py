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
