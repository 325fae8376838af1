import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from lrpe_hf.ops.image_quality import ssim


@pytest.mark.parametrize("shape", [(2, 3, 20, 23), (1, 1, 7, 7), (3, 3, 48, 48)])
def test_ssim_equals_scikit_image(shape):
    g = torch.Generator().manual_seed(sum(shape))
    reference = torch.rand(*shape, generator=g, dtype=torch.float64)
    prediction = (reference + 0.1 * torch.randn(*shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    prediction[..., : shape[-2] // 2, :] = 0.5  # a flat region, where SSIM is most sensitive
    expected = np.mean([
        structural_similarity(reference[i].numpy(), prediction[i].numpy(), data_range=1.0, channel_axis=0)
        for i in range(shape[0])
    ])
    assert ssim(prediction, reference).item() == pytest.approx(expected, abs=1e-10)
    assert ssim(prediction.float(), reference.float()).item() == pytest.approx(expected, abs=1e-5)


def test_ssim_is_one_for_equal_images_and_has_gradients():
    x = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)
    y = (x + 0.05 * torch.randn_like(x)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ssim(t, x), (y,))


@pytest.mark.parametrize(
    "a, b, kwargs, match",
    [
        ((1, 3, 8, 8), (1, 3, 8, 9), {}, "one shape"),
        ((3, 8, 8), (3, 8, 8), {}, r"\(B, C, H, W\)"),
        ((1, 3, 6, 8), (1, 3, 6, 8), {}, "smaller than the 7px window"),
        ((1, 3, 8, 8), (1, 3, 8, 8), {"win_size": 4}, "win_size=4"),
    ],
)
def test_ssim_bad_input(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ssim(torch.rand(*a), torch.rand(*b), **kwargs)
