import pytest
import torch

from lrpe_hf.ops.shifts import EIGHT_NEIGHBOURS, spatial_shift, temporal_shift


def _frames_input(batch, frames, tokens, channels):
    # value = 100 * video + frame + 1 everywhere: identifies the source frame of every channel
    b = torch.arange(batch).view(batch, 1, 1, 1) * 100
    t = torch.arange(frames).view(1, frames, 1, 1) + 1
    return (b + t).float().expand(batch, frames, tokens, channels).reshape(batch * frames, tokens, channels)


@pytest.mark.parametrize("segment", [4, 2])
def test_temporal_shift_reads_neighbouring_frames_within_segments(segment):
    batch, frames, tokens, channels, fold = 2, 4, 3, 8, 2
    x = _frames_input(batch, frames, tokens, channels)
    y = temporal_shift(x, segment=segment, fold=fold).view(batch, frames, tokens, channels)
    xv = x.view(batch, frames, tokens, channels)
    for t in range(frames):
        last, first = (t % segment) == segment - 1, (t % segment) == 0
        fwd = torch.zeros_like(xv[:, t, :, :fold]) if last else xv[:, t + 1, :, :fold]
        bwd = torch.zeros_like(xv[:, t, :, fold:2 * fold]) if first else xv[:, t - 1, :, fold:2 * fold]
        torch.testing.assert_close(y[:, t, :, :fold], fwd)
        torch.testing.assert_close(y[:, t, :, fold:2 * fold], bwd)
        torch.testing.assert_close(y[:, t, :, 2 * fold:], xv[:, t, :, 2 * fold:])


def test_temporal_shift_segment_8_of_16_frames_keeps_halves_independent():
    x = torch.randn(16, 5, 16, requires_grad=True)
    y = temporal_shift(x, segment=8, fold=2)
    y[8].sum().backward()  # frame 8 must not read frame 7
    assert x.grad[7].abs().sum() == 0 and x.grad[9].abs().sum() > 0
    assert torch.all(y[7, :, :2] == 0) and torch.all(y[8, :, 2:4] == 0)


def test_temporal_shift_rejects_bad_segment():
    with pytest.raises(ValueError, match="segments"):
        temporal_shift(torch.zeros(6, 2, 8), segment=4, fold=2)


def test_spatial_shift_matches_border_rules_on_a_rectangular_grid():
    batch, height, width, frames, g = 2, 3, 4, 2, 2
    channels = 16 * g + 3  # some extra channels beyond the 16 g
    n = height * width
    token = torch.arange(batch * n).float() + 1  # value = token id + 1 (never 0)
    x = token.view(-1, 1, 1).expand(batch * n, frames, channels).clone()
    y = spatial_shift(x, height, width).view(batch, height, width, frames, channels)
    xg = x.view(batch, height, width, frames, channels)
    for yy in range(height):
        for xx in range(width):
            for i, (dy, dx, keep_own) in enumerate(EIGHT_NEIGHBOURS):
                sy, sx = yy + dy, xx + dx
                got = y[:, yy, xx, :, i * g:(i + 1) * g]
                if 0 <= sy < height and 0 <= sx < width:
                    want = xg[:, sy, sx, :, i * g:(i + 1) * g]
                else:
                    want = xg[:, yy, xx, :, i * g:(i + 1) * g] if keep_own else torch.zeros_like(got)
                torch.testing.assert_close(got, want)
            torch.testing.assert_close(y[:, yy, xx, :, 8 * g:], xg[:, yy, xx, :, 8 * g:])
    # first group reads the row below: token (0, 0) gets token (1, 0)
    assert y[0, 0, 0, 0, 0] == xg[0, 1, 0, 0, 0]


def test_spatial_shift_errors():
    with pytest.raises(ValueError, match="no neighbours"):
        spatial_shift(torch.zeros(2, 3, 16), 1, 2)
    with pytest.raises(NotImplementedError, match="shift_size=2"):
        spatial_shift(torch.zeros(9, 3, 32), 3, 3, shift_size=2)
    with pytest.raises(ValueError, match="16 channels"):
        spatial_shift(torch.zeros(9, 3, 8), 3, 3)
