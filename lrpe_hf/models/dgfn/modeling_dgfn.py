"""Texture- and structure-guided image smoothing (TPN + SPN + DGFN/TSAFN, arXiv 1712.02893) for Transformers.

``I (B,3,H,W) --TPN--> T (B,1,H,W)``, ``I --SPN--> 5 side maps + fused S (B,1,H,W)``,
``concat[I, T, S] --filtering network--> O (B,3,H,W)``: the structure-only (smoothed) image. All in [0, 1].

Any input size works: the image is padded to a multiple of 16 (the SPN down-samples 4 times) inside the model and
every output is cropped back to the input size.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput, can_return_tuple

from ...ops.image_quality import ssim
from ...ops.kernel_prediction import weighted_neighbourhood_average
from ..modeling_common import AtomicSaveMixin, reject_unknown_kwargs
from .configuration_dgfn import DgfnConfig

TRAINING_STAGES = ("tpn", "spn", "filter", "joint")
GUIDANCE_MODES = ("predicted", "ground_truth")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_HED_BGR_MEAN = (104.00699, 116.66877, 122.67892)
# pixel_values are images in [0, 1]; this much outside is rounding or interpolation overshoot, more is a 0-255 or
# normalised image that would give a plausible but wrong result
_RANGE_TOLERANCE = 0.01


@dataclass
class DgfnImageSmoothingOutput(ModelOutput):
    """Output of [`DgfnForImageSmoothing`].

    Args:
        loss: weighted sum of the terms below that could be computed (labels present, weight > 0).
        reconstruction `(B, C, H, W)`: the smoothed, structure-only image (in [0, 1] unless `predict_residual`).
        texture_map `(B, 1, H, W)`: texture guidance in [0, 1] (predicted, or the given label in ground-truth mode).
        structure_map `(B, 1, H, W)`: fused edge probability in [0, 1] (predicted, or the given label).
        structure_side_outputs: the 5 HED side-output probabilities, each `(B, 1, H, W)` (None in ground-truth mode).
        filter_loss / texture_loss / structure_loss: the unweighted loss terms (None when not computed).
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    texture_map: torch.FloatTensor | None = None
    structure_map: torch.FloatTensor | None = None
    structure_side_outputs: tuple[torch.FloatTensor, ...] | None = None
    filter_loss: torch.FloatTensor | None = None
    texture_loss: torch.FloatTensor | None = None
    structure_loss: torch.FloatTensor | None = None


def class_balanced_bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """HED's class-balanced binary cross-entropy, averaged over pixels and images.

    Per image, with beta = share of non-edge pixels, edge pixels (target > 0.5) weigh beta and the others 1 - beta,
    so both classes carry the same total weight. Soft targets are allowed (used as BCE targets; the class of a pixel
    is target > 0.5). An all-background image gives a finite loss of 0.
    """
    if logits.shape != target.shape:
        raise ValueError(f"edge logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
    target = target.to(logits.dtype)
    positive = (target > 0.5).to(logits.dtype)
    dims = tuple(range(1, logits.ndim))
    num_pixels = positive[0].numel()
    beta = 1.0 - positive.sum(dim=dims, keepdim=True) / num_pixels  # share of negatives
    weight = beta * positive + (1.0 - beta) * (1.0 - positive)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (weight * bce).sum(dim=dims).mean() / num_pixels


class ConvBlock(nn.Module):
    """`k x k` same-size (optionally dilated) convolution, optional BatchNorm (then the conv has no bias), ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, batchnorm: bool, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=not batchnorm
        )
        self.norm = nn.BatchNorm2d(out_ch) if batchnorm else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(hidden_states)))


def _normalization_constants(config: DgfnConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) applied to the SPN input; "hed" = BGR x255 minus the Caffe means = (x_bgr - m/255) / (1/255)."""
    if config.spn_input_normalization == "imagenet":
        return torch.tensor(_IMAGENET_MEAN), torch.tensor(_IMAGENET_STD)
    if config.spn_input_normalization == "hed":
        mean = torch.tensor(_HED_BGR_MEAN) / 255.0
        return mean, torch.full_like(mean, 1 / 255.0)
    return torch.zeros(config.num_channels), torch.ones(config.num_channels)


class TexturePredictionNetwork(nn.Module):
    """Shallow multi-scale CNN predicting where textures are and how strong (TPN).

    One branch of 3x3 convs per pyramid scale (no weight sharing), each branch's output resampled back to the input
    size, concatenated and fused by a 3x3 conv into one sigmoid map. Input `(B, C, H, W)`, output `(B, 1, H, W)`.
    """

    def __init__(self, config: DgfnConfig):
        super().__init__()
        self.scales = list(config.tpn_scales)
        self.mode = config.tpn_resample
        widths = [config.num_channels, *config.tpn_channels]
        self.branches = nn.ModuleList(
            nn.Sequential(*[ConvBlock(widths[i], widths[i + 1], 3, config.use_batchnorm) for i in range(len(widths) - 1)])
            for _ in self.scales
        )
        self.fuse = nn.Conv2d(widths[-1] * len(self.scales), 1, 3, padding=1)
        self.fuse_norm = nn.BatchNorm2d(1) if config.tpn_output_batchnorm else nn.Identity()

    def _resample(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        if self.mode == "nearest":
            return F.interpolate(x, size=size, mode="nearest")
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        maps = []
        for scale, branch in zip(self.scales, self.branches):
            size = (max(1, height // scale), max(1, width // scale))  # odd and tiny sizes stay valid
            maps.append(self._resample(branch(self._resample(pixel_values, size)), (height, width)))
        return torch.sigmoid(self.fuse_norm(self.fuse(torch.cat(maps, dim=1))))


class VggStage(GradientCheckpointingLayer):
    """One VGG stage (optional 2x2 max-pool, then 3x3 conv + ReLU layers); checkpointable."""

    def __init__(self, in_ch: int, out_ch: int, depth: int, pool: bool, batchnorm: bool):
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2) if pool else nn.Identity()
        self.convs = nn.Sequential(*[ConvBlock(in_ch if i == 0 else out_ch, out_ch, 3, batchnorm) for i in range(depth)])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.convs(self.pool(hidden_states))


class StructurePredictionNetwork(nn.Module):
    """HED edge network (Xie & Tu 2015) on a VGG layout: the structure prediction network (SPN).

    Side outputs (1x1 convs) after each of the 5 stages (strides 1, 2, 4, 8, 16) are up-sampled to the input size
    and fused by a 1x1 conv initialised to `spn_fuse_init` (0.2). Returns logits: `(side_logits [5 x (B,1,H,W)],
    fused_logits (B,1,H,W))`. The input is normalised here (the processor only rescales to [0, 1]); H and W must be
    multiples of 16 (the model pads).
    """

    def __init__(self, config: DgfnConfig):
        super().__init__()
        self.normalization = config.spn_input_normalization
        self.upsample = config.spn_upsample
        channels = config.spn_stage_channels
        in_chs = [config.num_channels, *channels[:-1]]
        self.stages = nn.ModuleList(
            VggStage(in_chs[i], channels[i], config.spn_stage_depths[i], pool=i > 0, batchnorm=config.spn_batchnorm)
            for i in range(5)
        )
        self.side_convs = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in channels)
        self.fuse = nn.Conv2d(5, 1, 1)
        mean, std = _normalization_constants(config)
        self.register_buffer("input_mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("input_std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        height, width = pixel_values.shape[-2:]
        x = pixel_values.flip(1) if self.normalization == "hed" else pixel_values
        hidden = (x - self.input_mean) / self.input_std
        if self.training and self.stages[0].gradient_checkpointing and torch.is_grad_enabled() and any(
            p.requires_grad for p in self.stages.parameters()
        ):
            # Reentrant checkpointing (use_reentrant=True) detaches a stage none of whose inputs requires grad: the
            # image does not, so every SPN weight would silently get no gradient. Same remedy as Transformers'
            # enable_input_require_grads: the normalised input requires grad.
            hidden.requires_grad_(True)
        sides = []
        for stage, side_conv in zip(self.stages, self.side_convs):
            hidden = stage(hidden)
            side = side_conv(hidden)
            if side.shape[-2:] != (height, width):
                kwargs = {"align_corners": False} if self.upsample == "bilinear" else {}
                side = F.interpolate(side, size=(height, width), mode=self.upsample, **kwargs)
            sides.append(side)
        return sides, self.fuse(torch.cat(sides, dim=1))


class GuidedFilteringNetwork(nn.Module):
    """The filtering network (DGFN / TSAFN): image + texture map + structure map -> structure-only image.

    Input `(B, C + 2, H, W)`; convs with `filter_kernels` (and `filter_dilations`), BN + ReLU in between; the output
    is either `sigmoid(conv(...))` (direct, in [0, 1]) or `image + conv(...)` (`predict_residual`).
    """

    def __init__(self, config: DgfnConfig):
        super().__init__()
        k = config.filter_kernels
        d = config.filter_dilations or [1] * len(k)
        widths = [config.num_channels + 2, *config.filter_channels]
        self.blocks = nn.Sequential(
            *[ConvBlock(widths[i], widths[i + 1], k[i], config.use_batchnorm, d[i]) for i in range(len(k) - 1)]
        )
        self.out_conv = nn.Conv2d(
            widths[-1], config.num_channels, k[-1], padding=d[-1] * (k[-1] // 2), dilation=d[-1]
        )
        self.out_conv.is_filter_output = True  # read by _init_weights
        self.out_norm = nn.BatchNorm2d(config.num_channels) if config.filter_output_batchnorm else nn.Identity()
        self.predict_residual = config.predict_residual
        self.kernel_size, self.kernel_dilation = config.output_kernel_size, config.output_kernel_dilation
        if self.kernel_size:
            self.kernel_conv = nn.Conv2d(widths[-1], self.kernel_size**2, k[-1], padding=d[-1] * (k[-1] // 2),
                                         dilation=d[-1])
            self.kernel_conv.is_kernel_logits = True  # read by _init_weights

    def forward(self, pixel_values: torch.Tensor, texture_map: torch.Tensor, structure_map: torch.Tensor) -> torch.Tensor:
        hidden = self.blocks(torch.cat([pixel_values, texture_map, structure_map], dim=1))
        out = self.out_norm(self.out_conv(hidden))
        out = pixel_values + out if self.predict_residual else torch.sigmoid(out)
        if self.kernel_size:
            # softmax over the taps of an NCHW tensor: 2x faster on CPU than over the conv's channels-last output
            weights = self.kernel_conv(hidden).contiguous().softmax(dim=1)
            out = weighted_neighbourhood_average(out, weights, self.kernel_dilation)
        return out


class DgfnPreTrainedModel(AtomicSaveMixin, PreTrainedModel):
    config_class = DgfnConfig
    base_model_prefix = "dgfn"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = []
    # The losses are means that ignore the Trainer's num_items_in_batch: so that the Trainer divides them by the
    # gradient-accumulation steps itself (else accumulated gradients are that many times too large).
    accepts_loss_kwargs = False

    def save_pretrained(self, save_directory, *args, **kwargs):
        if getattr(self, "batchnorm_folded", False):
            raise ValueError(
                "this model is an inference-only copy with BatchNorm folded into its convolutions (fold_batchnorm): "
                "its weights no longer match its config; save the model it was made from"
            )
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        if isinstance(module, nn.Conv2d) and getattr(module, "is_filter_output", False):
            # start as the identity (residual) or mid-grey (direct): a kaiming-initialised last conv adds residuals of
            # magnitude ~1 that take hundreds of steps to unlearn. (Handled on the conv itself: Transformers only
            # visits modules that own parameters or buffers.)
            if self.config.predict_residual:
                init.zeros_(module.weight)
            else:
                init.normal_(module.weight, std=self.config.initializer_range)
            init.zeros_(module.bias)
        if isinstance(module, nn.Conv2d) and getattr(module, "is_kernel_logits", False):
            # start close to the identity: the centre tap gets 90 % of the weight, the others share the rest
            taps = module.out_channels
            init.zeros_(module.weight)
            init.zeros_(module.bias)
            module.bias[taps // 2] = math.log(0.9 * (taps - 1) / 0.1)
        if isinstance(module, StructurePredictionNetwork):
            init.constant_(module.fuse.weight, self.config.spn_fuse_init)
            init.zeros_(module.fuse.bias)
            # non-persistent buffers are never loaded: rebuild them (meta-device loading leaves garbage)
            mean, std = _normalization_constants(self.config)
            init.copy_(module.input_mean, mean.view(1, -1, 1, 1))
            init.copy_(module.input_std, std.view(1, -1, 1, 1))


def _pad(x: torch.Tensor, pad_h: int, pad_w: int, mode: str) -> torch.Tensor:
    if pad_h == 0 and pad_w == 0:
        return x
    if mode == "zeros":
        return F.pad(x, (0, pad_w, 0, pad_h))
    if mode == "reflect" and (pad_h >= x.shape[-2] or pad_w >= x.shape[-1]):
        mode = "replicate"  # reflection needs pad < size; tiny images are replicated instead
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _as_map(label: torch.Tensor | None, name: str, like: torch.Tensor) -> torch.Tensor | None:
    """Labels for the 1-channel maps may be (B, H, W) or (B, 1, H, W)."""
    if label is None:
        return None
    if label.ndim == 3:
        label = label.unsqueeze(1)
    if label.ndim != 4 or label.shape[1] != 1 or label.shape[0] != like.shape[0] or label.shape[-2:] != like.shape[-2:]:
        raise ValueError(
            f"{name} must have shape (B, 1, H, W) or (B, H, W) matching pixel_values {tuple(like.shape)}, "
            f"got {tuple(label.shape)}"
        )
    return label.to(like.dtype)


class DgfnForImageSmoothing(DgfnPreTrainedModel):
    """Texture- and structure-aware smoothing: TPN + SPN guiding a filtering CNN.

    Training stages (`set_training_stage`): `"tpn"` (texture network only), `"spn"` (edge network only),
    `"filter"` (filtering network on ground-truth guidances), `"joint"` (everything, weighted losses; default).
    """

    def __init__(self, config: DgfnConfig):
        super().__init__(config)
        self.texture_network = TexturePredictionNetwork(config)
        self.structure_network = StructurePredictionNetwork(config)
        self.filter_network = GuidedFilteringNetwork(config)
        self.training_stage = "joint"
        self.post_init()

    def set_training_stage(self, stage: str) -> None:
        """Select which sub-network is trained: freezes the others (`requires_grad=False`) and restricts the loss."""
        if stage not in TRAINING_STAGES:
            raise ValueError(f"training stage {stage!r} is not one of {TRAINING_STAGES}")
        trained = {
            "tpn": (self.texture_network,),
            "spn": (self.structure_network,),
            "filter": (self.filter_network,),
            "joint": (self.texture_network, self.structure_network, self.filter_network),
        }[stage]
        for module in (self.texture_network, self.structure_network, self.filter_network):
            module.requires_grad_(any(module is m for m in trained))
        self.training_stage = stage

    def _check_pixels(self, pixel_values: torch.Tensor) -> None:
        if not torch.is_tensor(pixel_values) or pixel_values.ndim != 4:
            shape = tuple(pixel_values.shape) if torch.is_tensor(pixel_values) else type(pixel_values).__name__
            raise ValueError(f"pixel_values must be a (batch, channels, height, width) tensor, got {shape}")
        if pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels but the model expects {self.config.num_channels} "
                "(RGB); convert grayscale/RGBA images with the image processor"
            )
        if pixel_values.shape[-2] < 1 or pixel_values.shape[-1] < 1:
            raise ValueError(f"pixel_values has an empty spatial size {tuple(pixel_values.shape[-2:])}")
        if not pixel_values.is_floating_point():
            raise ValueError(f"pixel_values must be floating point in [0, 1], got dtype {pixel_values.dtype}")
        if not torch.isfinite(pixel_values).all():
            raise ValueError("pixel_values contains NaN or infinite values")
        low, high = pixel_values.aminmax()
        if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise ValueError(
                f"pixel_values must lie in [0, 1], got values in [{low.item():.4g}, {high.item():.4g}]: rescale 0-255 "
                "images by 1/255 and do not normalise them (DgfnImageProcessor does this)"
            )

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        texture_labels: torch.Tensor | None = None,
        structure_labels: torch.Tensor | None = None,
        guidance: str | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DgfnImageSmoothingOutput:
        r"""
        Args:
            pixel_values `(B, C, H, W)`: images in [0, 1], any H and W.
            labels `(B, C, H, W)`: structure-only target image (reconstruction MSE).
            texture_labels `(B, 1, H, W)`: texture ground truth in [0, 1] (TPN MSE).
            structure_labels `(B, 1, H, W)`: edge ground truth in [0, 1] (class-balanced BCE on 5 sides + fused).
            guidance: `"predicted"` (default) or `"ground_truth"`: feed `texture_labels`/`structure_labels` to the
                filtering network instead of running the TPN and SPN (which then get no gradient). Defaults to
                `"ground_truth"` in the `"filter"` training stage.
            output_attentions / output_hidden_states: refused when true (here or in the config): a CNN has no
                attention weights and no (batch, seq, hidden) states; the guidance maps are in the output.
        """
        reject_unknown_kwargs(type(self).__name__, kwargs)
        for flag, value in (("output_attentions", output_attentions), ("output_hidden_states", output_hidden_states)):
            if value if value is not None else getattr(self.config, flag):
                raise ValueError(
                    f"{type(self).__name__} cannot return {flag.removeprefix('output_')} ({flag}=True, in the call "
                    "or the config): it is a CNN without attention or (batch, seq, hidden) hidden states; its "
                    "intermediate results are texture_map, structure_map and structure_side_outputs"
                )
        if self.training and getattr(self, "batchnorm_folded", False):
            raise ValueError(
                "this model is an inference-only copy with BatchNorm folded into its convolutions (fold_batchnorm); "
                "train the model it was made from"
            )
        self._check_pixels(pixel_values)
        stage = self.training_stage
        if guidance is None:
            guidance = "ground_truth" if stage == "filter" else "predicted"
        if guidance not in GUIDANCE_MODES:
            raise ValueError(f"guidance={guidance!r} is not one of {GUIDANCE_MODES}")
        texture_labels = _as_map(texture_labels, "texture_labels", pixel_values)
        structure_labels = _as_map(structure_labels, "structure_labels", pixel_values)
        if labels is not None and labels.shape != pixel_values.shape:
            raise ValueError(f"labels must have the shape of pixel_values {tuple(pixel_values.shape)}, got {tuple(labels.shape)}")
        if guidance == "ground_truth" and (texture_labels is None or structure_labels is None):
            raise ValueError("guidance='ground_truth' needs both texture_labels and structure_labels")

        height, width = pixel_values.shape[-2:]
        div = self.config.size_divisor
        pad_h, pad_w = (-height) % div, (-width) % div
        # NHWC is the native layout of oneDNN's CPU convolutions (and of cuDNN's tensor-core kernels): the convs take
        # 1.5x less time on CPU than with NCHW, 1.9x with channels-last weights too (see `SmoothingPipeline`).
        x = _pad(pixel_values, pad_h, pad_w, self.config.padding_mode).contiguous(memory_format=torch.channels_last)

        def crop(t):
            return t[..., :height, :width]

        # a sub-network runs when it is trained in this stage, or when the filter needs its predicted guidance
        run_filter = stage in ("filter", "joint")
        run_tpn = stage == "tpn" or (guidance == "predicted" and run_filter)
        run_spn = stage == "spn" or (guidance == "predicted" and run_filter)
        train_tpn, train_spn = stage in ("tpn", "joint"), stage in ("spn", "joint")

        # guidance maps at the padded size (fed to the filter) and cropped (returned, used by the losses)
        texture_padded = structure_padded = side_logits = fused_logits = reconstruction = None
        texture_map = structure_map = None
        if guidance == "ground_truth":
            texture_map, structure_map = texture_labels, structure_labels
            texture_padded = _pad(texture_map, pad_h, pad_w, self.config.padding_mode)
            structure_padded = _pad(structure_map, pad_h, pad_w, self.config.padding_mode)
        if run_tpn:
            texture_padded = self.texture_network(x)
            texture_map = crop(texture_padded)
        if run_spn:
            sides, fused = self.structure_network(x)
            side_logits, fused_logits = [crop(s) for s in sides], crop(fused)
            structure_padded = torch.sigmoid(fused)
            structure_map = crop(structure_padded)
        if run_filter:
            reconstruction = crop(self.filter_network(x, texture_padded, structure_padded))

        cfg = self.config
        filter_loss = texture_loss = structure_loss = None
        if labels is not None and reconstruction is not None and cfg.loss_weight_filter > 0:
            target = labels.to(reconstruction.dtype)
            filter_loss = F.mse_loss(reconstruction, target)
            if cfg.filter_ssim_weight > 0:
                if min(height, width) < 7:
                    raise ValueError(
                        f"filter_ssim_weight={cfg.filter_ssim_weight} needs labelled images of at least 7x7 (the SSIM "
                        f"window), got {height}x{width}; use larger crops or set filter_ssim_weight=0"
                    )
                filter_loss = filter_loss + cfg.filter_ssim_weight * (1 - ssim(reconstruction, target))
        if texture_labels is not None and run_tpn and train_tpn and cfg.loss_weight_tpn > 0:
            texture_loss = F.mse_loss(texture_map, texture_labels)
        if structure_labels is not None and run_spn and train_spn and cfg.loss_weight_spn > 0:
            structure_loss = sum(class_balanced_bce_with_logits(s, structure_labels) for s in side_logits)
            if cfg.spn_balance_fused:
                structure_loss = structure_loss + class_balanced_bce_with_logits(fused_logits, structure_labels)
            else:
                structure_loss = structure_loss + F.binary_cross_entropy_with_logits(fused_logits, structure_labels)
        terms = [
            (w, term)
            for w, term in (
                (cfg.loss_weight_filter, filter_loss),
                (cfg.loss_weight_tpn, texture_loss),
                (cfg.loss_weight_spn, structure_loss),
            )
            if term is not None
        ]
        loss = sum(w * term for w, term in terms) if terms else None
        if loss is None and self.training and any(lbl is not None for lbl in (labels, texture_labels, structure_labels)):
            raise ValueError(
                f"training stage {stage!r} with guidance {guidance!r} got labels but none of them gives a loss "
                "(e.g. stage 'tpn' needs texture_labels, 'spn' structure_labels, 'filter' labels)"
            )

        return DgfnImageSmoothingOutput(
            loss=loss,
            reconstruction=reconstruction,
            texture_map=texture_map,
            structure_map=structure_map,
            structure_side_outputs=tuple(torch.sigmoid(s) for s in side_logits) if side_logits is not None else None,
            filter_loss=filter_loss,
            texture_loss=texture_loss,
            structure_loss=structure_loss,
        )


def fold_batchnorm(model: DgfnForImageSmoothing) -> DgfnForImageSmoothing:
    """An inference-only copy of `model` in eval mode with every BatchNorm that follows a convolution folded into it.

    Same outputs as `model.eval()` (to float rounding; 1e-6 measured) for 1.14x less CPU time at 512x512 (small
    preset, one thread). The copy refuses to
    train or to be saved (its weights no longer match its config); `model` itself is not changed. Convolutions
    wrapped by an adapter (PEFT LoRA) are left unfolded: merge the adapter first to fold them too.
    """
    folded = copy.deepcopy(model).eval()
    pairs = [(block, "conv", "norm") for block in folded.modules() if isinstance(block, ConvBlock)]
    pairs += [(folded.filter_network, "out_conv", "out_norm"), (folded.texture_network, "fuse", "fuse_norm")]
    for owner, conv_name, norm_name in pairs:
        conv, norm = getattr(owner, conv_name), getattr(owner, norm_name)
        if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and norm.track_running_stats:
            setattr(owner, conv_name, fuse_conv_bn_eval(conv, norm))
            setattr(owner, norm_name, nn.Identity())
    folded.batchnorm_folded = True
    return folded


__all__ = [
    "fold_batchnorm",
    "DgfnImageSmoothingOutput",
    "DgfnPreTrainedModel",
    "DgfnForImageSmoothing",
    "TexturePredictionNetwork",
    "StructurePredictionNetwork",
    "GuidedFilteringNetwork",
    "class_balanced_bce_with_logits",
]
