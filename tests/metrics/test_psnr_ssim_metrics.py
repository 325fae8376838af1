import numpy as np
import pytest

from lrpe_hf.metrics import load_metric


@pytest.fixture(scope="module")
def psnr():
    return load_metric("psnr")


@pytest.fixture(scope="module")
def ssim():
    return load_metric("ssim")


def test_psnr_known_values(psnr):
    ref = np.full((2, 8, 8), 0.5)
    assert psnr.compute(predictions=[ref + 0.1], references=[ref])["psnr"] == pytest.approx(20.0, abs=1e-4)
    x = np.random.default_rng(0).random((8, 8, 3))
    assert psnr.compute(predictions=[x], references=[x])["psnr"] == float("inf")
    # data_range=255 with the same relative error gives the same PSNR
    assert psnr.compute(predictions=[(ref + 0.1) * 255], references=[ref * 255], data_range=255)["psnr"] == pytest.approx(20.0, abs=1e-3)


def test_psnr_matches_skimage_and_add_batch(psnr):
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(1)
    refs = [rng.random((9, 10, 3)).astype(np.float32) for _ in range(3)]
    preds = [np.clip(r + rng.normal(0, 0.05, r.shape), 0, 1).astype(np.float32) for r in refs]
    expected = np.mean([peak_signal_noise_ratio(r, p, data_range=1.0) for r, p in zip(refs, preds)])
    psnr.add_batch(predictions=preds[:2], references=refs[:2])
    psnr.add_batch(predictions=preds[2:], references=refs[2:])
    assert psnr.compute()["psnr"] == pytest.approx(expected, rel=1e-5)


def test_ssim_identity_channel_axis_and_errors(ssim):
    x = np.random.default_rng(2).random((3, 16, 16))
    assert ssim.compute(predictions=[x], references=[x], channel_axis=0)["ssim"] == pytest.approx(1.0)
    hwc = np.moveaxis(x, 0, -1)
    noisy = np.clip(hwc + 0.1, 0, 1)
    a = ssim.compute(predictions=[noisy], references=[hwc])["ssim"]
    b = ssim.compute(predictions=[np.moveaxis(noisy, -1, 0)], references=[x], channel_axis=0)["ssim"]
    assert a == pytest.approx(b, rel=1e-5) and a < 1
    with pytest.raises(ValueError, match="7x7"):
        ssim.compute(predictions=[np.zeros((5, 5, 3))], references=[np.zeros((5, 5, 3))])
    with pytest.raises(ValueError, match="shape"):
        ssim.compute(predictions=[np.zeros((8, 8, 3))], references=[np.zeros((9, 8, 3))])
