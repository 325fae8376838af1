import pytest
import torch

from lrpe_hf.ops.kernel_prediction import weighted_neighbourhood_average


def test_weighted_neighbourhood_average_matches_an_unfold_reference():
    g = torch.Generator().manual_seed(0)
    for size, dilation in ((3, 1), (5, 2)):
        image = torch.rand(2, 3, 9, 11, generator=g, dtype=torch.float64)
        weights = torch.rand(2, size * size, 9, 11, generator=g, dtype=torch.float64).softmax(dim=1)
        reach = dilation * (size // 2)
        padded = torch.nn.functional.pad(image, (reach,) * 4, mode="replicate")
        patches = torch.nn.functional.unfold(padded, size, dilation=dilation).view(2, 3, size * size, 9, 11)
        expected = (patches * weights[:, None]).sum(2)
        torch.testing.assert_close(weighted_neighbourhood_average(image, weights, dilation), expected)
    # a one-hot centre tap is the identity; uniform taps are a box filter
    centre = torch.zeros(1, 9, 9, 11, dtype=torch.float64)
    centre[:, 4] = 1
    torch.testing.assert_close(weighted_neighbourhood_average(image[:1], centre), image[:1])
    box = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(image[:1], (1,) * 4, mode="replicate"), 3, stride=1)
    torch.testing.assert_close(weighted_neighbourhood_average(image[:1], torch.full_like(centre, 1 / 9)), box)
    with pytest.raises(ValueError, match="K\\*K channels"):
        weighted_neighbourhood_average(image, weights[:, :8])
