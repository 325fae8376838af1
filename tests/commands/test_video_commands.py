"""End to end: motion videos on disk -> Trainer run (top-1/top-5, multi-view) -> saved folder -> classify-video."""

import json

import pytest

from lrpe_hf.cli import main as cli_main
from lrpe_hf.data.motion_videos import make_motion_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    data = root / "motion"
    make_motion_dataset(data, train_per_class=2, validation_per_class=1, num_frames=8, size=32,
                        classes=("right_then_down", "up_then_left"))
    out = root / "run"
    status = cli_main([
        "train-video", "--data_dir", str(data), "--output_dir", str(out), "--image_size", "32", "--patch_size", "8",
        "--patch_stride", "8", "--num_frames", "4", "--hidden_size", "32", "--num_hidden_layers", "1",
        "--classifier_hidden_size", "16", "--max_steps", "2", "--per_device_train_batch_size", "2",
        "--eval_temporal_clips", "2", "--eval_spatial_crops", "1", "--cache_decoded_videos",
    ])
    assert status == 0
    return data, out


def test_train_video_writes_metrics_and_a_loadable_folder(trained):
    data, out = trained
    results = json.loads((out / "results.json").read_text())
    assert results["num_classes"] == 2 and results["chance_top1"] == 0.5
    for view in ("single_view", "multi_view"):
        assert 0.0 <= results[view]["top1_accuracy"] <= 1.0
        assert results[view]["top5_accuracy"] == 1.0  # 2 classes: top-5 always contains the label
    assert results["multi_view"]["views"] == 2
    assert (out / "model.safetensors").is_file() and (out / "preprocessor_config.json").is_file()


def test_classify_video_cli(trained, capsys):
    data, out = trained
    video = next((data / "validation" / "up_then_left").glob("*.mp4"))
    assert cli_main(["classify-video", str(out), str(video), "--top_k", "2", "--json", "--temporal_clips", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result[0]["file"] == str(video)
    labels = {p["label"] for p in result[0]["predictions"]}
    assert labels == {"right_then_down", "up_then_left"}
    assert abs(sum(p["score"] for p in result[0]["predictions"]) - 1.0) < 1e-4


def test_classify_video_cli_errors(trained, tmp_path, capsys):
    data, out = trained
    assert cli_main(["classify-video", str(out), str(tmp_path / "missing.mp4")]) == 1
    assert "video file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 10)
    assert cli_main(["classify-video", str(out), str(broken)]) == 1
    assert "broken.mp4" in capsys.readouterr().err
    assert cli_main(["classify-video", str(tmp_path), str(broken)]) == 1
    assert "not a saved model folder" in capsys.readouterr().err


def test_video_classification_pipeline_runs_end_to_end(trained):
    from transformers import pipeline

    data, out = trained
    video = next((data / "validation" / "right_then_down").glob("*.mp4"))
    result = pipeline("video-classification", model=str(out))(str(video), top_k=2)
    assert {r["label"] for r in result} == {"right_then_down", "up_then_left"}


def test_ablation_table(trained, tmp_path):
    data, _ = trained
    out = tmp_path / "ablation"
    status = cli_main([
        "train-video", "--ablation", "--ablation_variants", "full", "shuffled", "--data_dir", str(data),
        "--output_dir", str(out), "--image_size", "32", "--patch_size", "8", "--patch_stride", "8",
        "--num_frames", "4", "--hidden_size", "32", "--num_hidden_layers", "1", "--classifier_hidden_size", "16",
        "--max_steps", "1", "--per_device_train_batch_size", "2", "--eval_temporal_clips", "1",
        "--eval_spatial_crops", "1", "--cache_decoded_videos",
    ])
    assert status == 0
    rows = json.loads((out / "ablation.json").read_text())
    assert list(rows) == ["full (fixation + both shifts)", "control: full model, frames shuffled"]
    assert rows["control: full model, frames shuffled"]["shuffle_frames"] is True
    table = (out / "ablation.md").read_text()
    assert "| full (fixation + both shifts) |" in table and "Chance top-1 = 0.500" in table


def test_classify_video_skips_an_undecodable_file_and_refuses_zero_counts(trained, tmp_path, capsys):
    data, out = trained
    good = next((data / "validation" / "up_then_left").glob("*.mp4"))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 10)
    assert cli_main(["classify-video", str(out), str(broken), str(good), "--json"]) == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert [r["file"] for r in result] == [str(broken), str(good)]  # in the order given
    assert "error" in result[0] and result[1]["predictions"]
    assert "1 of 2 file(s) failed" in captured.err
    for flag in ("--batch_size", "--temporal_clips", "--spatial_crops", "--top_k"):
        assert cli_main(["classify-video", str(out), str(good), flag, "0"]) == 1
        assert f"{flag} must be a positive integer" in capsys.readouterr().err
