# Copyright 2026 The lrpe_hf authors. Licensed under the Apache License, Version 2.0.
"""Configuration of the texture- and structure-guided smoothing network (TPN + SPN + DGFN/TSAFN).

Paper: Lu, You, Barnes, "Deep Texture and Structure Aware Filtering Network for Image Smoothing" (arXiv 1712.02893,
ECCV 2018; v1 called the filtering network DGFN). The paper's layer tables were not available, so the defaults
follow the public "TSAFN-style" layout documented in the project's reference notes: a shallow multi-scale texture
network, a HED edge network on a VGG16 layout and a 4-layer filtering CNN fed with the image and both guidances.
"""

from __future__ import annotations

from transformers import PretrainedConfig

# VGG16 convolution layout: channels of each stage (before multiplying by the width) and convs per stage.
VGG16_STAGE_CHANNELS = (64, 128, 256, 512, 512)
VGG16_STAGE_DEPTHS = (2, 2, 3, 3, 3)

PRESETS: dict[str, dict] = {
    # The reference layout (arXiv 1712.02893 with an HED structure network): VGG16 HED (14.7 M parameters), 3P-sized TPN and filter network.
    "tsafn-vgg16": {},
    # A quarter-width HED (with BN: trained from scratch) for CPU training in minutes. Each choice was measured on the
    # validation split (README, "Image smoothing"): residual output learns fastest; a small SSIM term (+0.017 SSIM
    # with ground-truth guidance); a deeper dilated filter (35 px receptive field, same MACs); a kernel-predicting
    # output (the residual output averaged with per-pixel weights over 5x5 taps 2 px apart); and a
    # reconstruction-led joint loss (auxiliary TPN/SPN terms 50x / 200x below the reconstruction: with 0.6/0.2/0.2
    # the edge BCE dominates the loss that trains the guidance networks, and they hardly learn to serve the filter).
    "small": {
        "spn_width_multiplier": 0.25,
        "spn_stage_depths": (2, 2, 2, 2, 2),
        "spn_batchnorm": True,
        "filter_channels": (32, 32, 32, 32),
        "filter_kernels": (5, 3, 3, 3, 3),
        "filter_dilations": (1, 2, 4, 8, 1),
        "output_kernel_size": 5,
        "output_kernel_dilation": 2,
        "predict_residual": True,
        "filter_ssim_weight": 0.01,
        "loss_weight_filter": 1.0,
        "loss_weight_tpn": 0.02,
        "loss_weight_spn": 0.005,
    },
    # Tests: a few thousand parameters.
    "tiny": {
        "tpn_scales": (1, 2),
        "tpn_channels": (4, 4),
        "spn_width_multiplier": 0.0625,
        "spn_stage_depths": (1, 1, 1, 1, 1),
        "filter_channels": (8, 8, 4),
        "filter_kernels": (3, 3, 3, 3),
    },
}


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"DgfnConfig: {name}={value!r} is not allowed; choose one of {sorted(allowed)}")


def _check_positive_ints(name, value, length=None):
    value = tuple(value)
    if not value or any(not isinstance(v, int) or isinstance(v, bool) or v <= 0 for v in value):
        raise ValueError(f"DgfnConfig: {name}={value!r} must be a non-empty sequence of positive integers")
    if length is not None and len(value) != length:
        raise ValueError(f"DgfnConfig: {name}={value!r} must have exactly {length} entries, got {len(value)}")
    return value


class DgfnConfig(PretrainedConfig):
    r"""Configuration of [`DgfnForImageSmoothing`].

    Args:
        num_channels (`int`, defaults to 3): channels of the input and output image (RGB).
        tpn_scales (`tuple[int]`, defaults to `(1, 2, 4, 8)`): down-sampling factors of the texture network's
            pyramid; one branch (no weight sharing) per scale.
        tpn_channels (`tuple[int]`, defaults to `(16, 8, 4)`): widths of the 3x3 conv layers of each branch.
        tpn_resample (`str`, defaults to `"bilinear"`): `"bilinear"` or `"nearest"` (third-party parity) resampling
            of the pyramid.
        tpn_output_batchnorm (`bool`, defaults to `False`): BatchNorm on the 1-channel texture logit.
        spn_width_multiplier (`float`, defaults to 1.0): scales the VGG16 widths (64, 128, 256, 512, 512) of the
            HED structure network; 1.0 is the full VGG16 layout.
        spn_stage_depths (`tuple[int]`, defaults to `(2, 2, 3, 3, 3)`): 3x3 convs per VGG stage (VGG16).
        spn_batchnorm (`bool`, defaults to `False`): BatchNorm after each VGG conv (VGG16-BN); helps training from
            scratch, HED itself has none.
        spn_upsample (`str`, defaults to `"bilinear"`): up-sampling of the side outputs to the input size.
        spn_fuse_init (`float`, defaults to 0.2): initial weight of the 1x1 fusion conv (HED: 0.2 = mean of 5 maps).
        spn_input_normalization (`str`, defaults to `"imagenet"`): `"imagenet"` (mean/std), `"hed"` (BGR x255 minus
            the HED means) or `"none"`; applied inside the model, the processor only rescales to [0, 1].
        filter_channels (`tuple[int]`, defaults to `(64, 32, 16)`): widths of the filtering network's hidden convs
            (any number of them; the reference network has 3).
        filter_kernels (`tuple[int]`, defaults to `(7, 5, 3, 5)`): kernel sizes of its convs (odd), one more than
            `filter_channels` (the last conv maps to the image channels).
        filter_dilations (`tuple[int]`, *optional*): dilation of each of those convs; `None` means all 1, the reference
            network. Dilated layers widen the receptive field at no cost in parameters or MACs, as in the
            context-aggregation networks used to approximate smoothing operators.
        output_kernel_size (`int`, defaults to 0): with an odd size K >= 3, the filtering network also predicts, per
            pixel, K*K softmax weights, and its output becomes the weighted average of its (residual or direct)
            output over the K x K neighbourhood (dilated by `output_kernel_dilation`): a kernel-predicting output
            layer. Averaging drives the local variance of flat regions to zero, which a per-pixel residual cannot do
            exactly. 0 (default) is the reference plain output.
        output_kernel_dilation (`int`, defaults to 1): spacing of the K x K neighbourhood's taps.
        use_batchnorm (`bool`, defaults to `True`): BatchNorm in the TPN branches and the filtering network.
        filter_output_batchnorm (`bool`, defaults to `False`): BatchNorm on the filter's 3-channel output.
        predict_residual (`bool`, defaults to `False`): output = image + conv(...) instead of sigmoid(conv(...)).
        padding_mode (`str`, defaults to `"reflect"`): how inputs are padded to a multiple of `size_divisor`
            (cropped back afterwards); images too small to reflect fall back to `"replicate"`.
        loss_weight_filter / loss_weight_tpn / loss_weight_spn (`float`, defaults 0.6 / 0.2 / 0.2): weights of
            the reconstruction loss, the texture MSE and the class-balanced edge BCE in the total loss.
        filter_ssim_weight (`float`, defaults to `0.0`): the reconstruction loss is
            `MSE + filter_ssim_weight * (1 - SSIM)`, with the SSIM of the evaluation (7x7 window, see
            `lrpe_hf.ops.image_quality.ssim`). MSE alone barely penalises faint texture left in flat regions, which
            SSIM punishes hard (its contrast term there is about `C2 / (var + C2)`, with `C2 = 0.03**2`).
        spn_balance_fused (`bool`, defaults to `True`): class-balance the fused-map BCE like the side outputs
            (HED); `False` gives the third-party unweighted fused term.
    """

    model_type = "dgfn"
    keys_to_ignore_at_inference = [
        "texture_map",
        "structure_map",
        "structure_side_outputs",
        "filter_loss",
        "texture_loss",
        "structure_loss",
    ]

    def __init__(
        self,
        num_channels: int = 3,
        tpn_scales=(1, 2, 4, 8),
        tpn_channels=(16, 8, 4),
        tpn_resample: str = "bilinear",
        tpn_output_batchnorm: bool = False,
        spn_width_multiplier: float = 1.0,
        spn_stage_depths=VGG16_STAGE_DEPTHS,
        spn_batchnorm: bool = False,
        spn_upsample: str = "bilinear",
        spn_fuse_init: float = 0.2,
        spn_input_normalization: str = "imagenet",
        filter_channels=(64, 32, 16),
        filter_kernels=(7, 5, 3, 5),
        filter_dilations=None,
        output_kernel_size: int = 0,
        output_kernel_dilation: int = 1,
        use_batchnorm: bool = True,
        filter_output_batchnorm: bool = False,
        predict_residual: bool = False,
        padding_mode: str = "reflect",
        loss_weight_filter: float = 0.6,
        loss_weight_tpn: float = 0.2,
        loss_weight_spn: float = 0.2,
        filter_ssim_weight: float = 0.0,
        spn_balance_fused: bool = True,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if not isinstance(num_channels, int) or num_channels <= 0:
            raise ValueError(f"DgfnConfig: num_channels={num_channels!r} must be a positive integer")
        self.num_channels = num_channels
        self.tpn_scales = list(_check_positive_ints("tpn_scales", tpn_scales))
        self.tpn_channels = list(_check_positive_ints("tpn_channels", tpn_channels))
        _check_choice("tpn_resample", tpn_resample, {"bilinear", "nearest"})
        self.tpn_resample = tpn_resample
        self.tpn_output_batchnorm = bool(tpn_output_batchnorm)
        if not (isinstance(spn_width_multiplier, (int, float)) and 0 < spn_width_multiplier <= 4):
            raise ValueError(f"DgfnConfig: spn_width_multiplier={spn_width_multiplier!r} must be in (0, 4]")
        self.spn_width_multiplier = float(spn_width_multiplier)
        self.spn_stage_depths = list(_check_positive_ints("spn_stage_depths", spn_stage_depths, length=5))
        self.spn_batchnorm = bool(spn_batchnorm)
        _check_choice("spn_upsample", spn_upsample, {"bilinear", "nearest"})
        self.spn_upsample = spn_upsample
        self.spn_fuse_init = float(spn_fuse_init)
        _check_choice("spn_input_normalization", spn_input_normalization, {"imagenet", "hed", "none"})
        if spn_input_normalization != "none" and num_channels != 3:
            raise ValueError(
                f"DgfnConfig: spn_input_normalization={spn_input_normalization!r} needs num_channels=3, got "
                f"{num_channels}; use 'none'"
            )
        self.spn_input_normalization = spn_input_normalization
        self.filter_channels = list(_check_positive_ints("filter_channels", filter_channels))
        n_convs = len(self.filter_channels) + 1
        for name, value in (("filter_kernels", filter_kernels), ("filter_dilations", filter_dilations)):
            if value is not None and len(tuple(value)) != n_convs:
                raise ValueError(
                    f"DgfnConfig: {name}={tuple(value)!r} needs {n_convs} entries, one per conv: one more than "
                    f"filter_channels={tuple(self.filter_channels)!r} (the last conv maps to the image channels)"
                )
        kernels = _check_positive_ints("filter_kernels", filter_kernels)
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"DgfnConfig: filter_kernels={kernels!r} must all be odd (same-size convolutions)")
        self.filter_kernels = list(kernels)
        self.filter_dilations = (
            None if filter_dilations is None
            else list(_check_positive_ints("filter_dilations", filter_dilations))
        )
        if not isinstance(output_kernel_size, int) or isinstance(output_kernel_size, bool) or (
            output_kernel_size != 0 and (output_kernel_size < 3 or output_kernel_size % 2 == 0)
        ):
            raise ValueError(
                f"DgfnConfig: output_kernel_size={output_kernel_size!r} must be 0 (off) or an odd integer >= 3"
            )
        self.output_kernel_size = output_kernel_size
        self.output_kernel_dilation = _check_positive_ints("output_kernel_dilation", (output_kernel_dilation,))[0]
        self.use_batchnorm = bool(use_batchnorm)
        self.filter_output_batchnorm = bool(filter_output_batchnorm)
        self.predict_residual = bool(predict_residual)
        _check_choice("padding_mode", padding_mode, {"reflect", "replicate", "zeros"})
        self.padding_mode = padding_mode
        for name, value in (
            ("loss_weight_filter", loss_weight_filter),
            ("loss_weight_tpn", loss_weight_tpn),
            ("loss_weight_spn", loss_weight_spn),
            ("filter_ssim_weight", filter_ssim_weight),
        ):
            if not isinstance(value, (int, float)) or value < 0 or value != value:
                raise ValueError(f"DgfnConfig: {name}={value!r} must be a number >= 0")
        self.loss_weight_filter = float(loss_weight_filter)
        self.loss_weight_tpn = float(loss_weight_tpn)
        self.loss_weight_spn = float(loss_weight_spn)
        self.filter_ssim_weight = float(filter_ssim_weight)
        self.spn_balance_fused = bool(spn_balance_fused)
        self.initializer_range = float(initializer_range)
        super().__init__(**kwargs)

    @property
    def spn_stage_channels(self) -> list[int]:
        """Widths of the 5 VGG stages after applying `spn_width_multiplier` (at least 4 channels each)."""
        return [max(4, int(round(c * self.spn_width_multiplier))) for c in VGG16_STAGE_CHANNELS]

    @property
    def size_divisor(self) -> int:
        """Inputs are padded to a multiple of this (the SPN down-samples 4 times by 2)."""
        return 16

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "DgfnConfig":
        """A named configuration: `"tsafn-vgg16"` (the reference layout), `"small"` (CPU training) or `"tiny"` (tests)."""
        if name not in PRESETS:
            raise ValueError(f"DgfnConfig.from_preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})
