import numpy as np
import PIL.Image
import pytest
import torch

from lrpe_hf import DgfnConfig, DgfnForImageSmoothing, DgfnImageProcessor
from lrpe_hf.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("dgfn-model")
    torch.manual_seed(0)
    DgfnForImageSmoothing(DgfnConfig.from_preset("tiny")).save_pretrained(path)
    DgfnImageProcessor().save_pretrained(path)
    return path


def _images(folder):
    rng = np.random.default_rng(0)
    paths = {
        "rgb": folder / "rgb.png",
        "gray": folder / "gray.png",
        "gray16": folder / "gray16.png",
        "rgb16": folder / "rgb16.png",
        "odd": folder / "odd.jpg",
    }
    PIL.Image.fromarray(rng.integers(0, 256, (21, 35, 3), dtype=np.uint8)).save(paths["rgb"])
    PIL.Image.fromarray(rng.integers(0, 256, (17, 9), dtype=np.uint8)).save(paths["gray"])
    PIL.Image.fromarray(rng.integers(0, 65536, (12, 14), dtype=np.uint16)).save(paths["gray16"])
    import cv2

    cv2.imwrite(str(paths["rgb16"]), rng.integers(0, 65536, (11, 13, 3), dtype=np.uint16))
    PIL.Image.fromarray(rng.integers(0, 256, (5, 3, 3), dtype=np.uint8)).save(paths["odd"])
    return paths


def test_smooth_cli_writes_every_kind_and_keeps_size(model_dir, tmp_path):
    paths = _images(tmp_path)
    out = tmp_path / "out"
    status = main(["smooth", *map(str, paths.values()), "--model", str(model_dir), "--output_dir", str(out), "--save_maps"])
    assert status == 0
    assert PIL.Image.open(out / "rgb.png").size == (35, 21) and PIL.Image.open(out / "rgb.png").mode == "RGB"
    assert PIL.Image.open(out / "gray.png").mode == "L"
    assert PIL.Image.open(out / "gray16.png").mode.startswith("I")
    import cv2

    rgb16 = cv2.imread(str(out / "rgb16.png"), cv2.IMREAD_UNCHANGED)
    assert rgb16.dtype == np.uint16 and rgb16.shape == (11, 13, 3)
    assert PIL.Image.open(out / "odd.png").size == (3, 5)
    assert PIL.Image.open(out / "rgb_texture.png").mode == "L"
    assert PIL.Image.open(out / "rgb_structure.png").size == (35, 21)


def test_smooth_cli_reports_failures_and_continues(model_dir, tmp_path, capsys):
    paths = _images(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    five = tmp_path / "five.tiff"
    PIL.Image.fromarray(np.zeros((6, 6), np.float32) + 3.0).save(five)  # float data outside [0, 1]
    out = tmp_path / "out"
    status = main(["smooth", str(broken), str(tmp_path / "missing.png"), str(five), str(paths["rgb"]),
                   "--model", str(model_dir), "--output_dir", str(out)])
    err = capsys.readouterr().err
    assert status == 1
    assert "broken.png" in err and "missing.png" in err and "five.tiff" in err and "3 of 4" in err
    assert (out / "rgb.png").exists()  # the good file after the bad ones was still processed


def test_smooth_cli_never_overwrites_inputs_or_results(model_dir, tmp_path, capsys):
    paths = _images(tmp_path)
    before = paths["rgb"].read_bytes()
    # output dir == input dir: the result rgb.png would be the input itself
    assert main(["smooth", str(paths["rgb"]), "--model", str(model_dir), "--output_dir", str(tmp_path)]) == 1
    assert "would overwrite input" in capsys.readouterr().err
    assert paths["rgb"].read_bytes() == before
    out = tmp_path / "o"
    assert main(["smooth", str(paths["rgb"]), "--model", str(model_dir), "--output_dir", str(out)]) == 0
    assert main(["smooth", str(paths["rgb"]), "--model", str(model_dir), "--output_dir", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["smooth", str(paths["rgb"]), "--model", str(model_dir), "--output_dir", str(out), "--overwrite"]) == 0
    # two inputs with the same name from different folders get distinct results
    other = tmp_path / "sub"
    other.mkdir()
    PIL.Image.open(paths["gray"]).save(other / "rgb.png")
    assert main(["smooth", str(paths["rgb"]), str(other / "rgb.png"), "--model", str(model_dir),
                 "--output_dir", str(tmp_path / "two")]) == 0
    assert (tmp_path / "two" / "rgb.png").exists() and (tmp_path / "two" / "rgb_2.png").exists()


def test_smooth_cli_names_a_missing_model_folder(tmp_path, capsys):
    image = tmp_path / "in.png"
    PIL.Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    assert main(["smooth", str(image), "--model", "no_such_dir", "--output_dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "no_such_dir: no such folder" in err
