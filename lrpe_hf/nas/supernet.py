"""Weight-sharing super-network over a mixed-attention search space.

One store of maximal weights; any architecture of the search space is a **slice** of it:

* every weight of the standalone ``mixformer`` model of an architecture is the *prefix* slice of the matching
  maximal weight (``W[:out, :in]``, ``b[:out]``, LayerNorm ``gamma[:d]``, patch conv ``weight[:d]``, CLS and
  position embeddings ``[..., :d]``, classifier ``W[:, :d]``). q, k and v are separate projections, so their
  slices are block-wise (``W_q[:h*d_h, :d]``, ``W_k[:h*d_h, :d]``, ...): the *clean* variant (the released mixFormer code slices rows [0:3s] of the packed q/k/v weight, so k and v of a
  sub-network do not use the full layer's k/v blocks)
  quirk 1, not the released code's ``[0:3s]`` row slice of a packed matrix (that quirk only changes which
  weights are shared, not the maths of a sub-network);
* depth: the first ``depth`` layers are used, trailing layers are skipped;
* attention weights are **not** shared across attention types: every layer slot owns one attention module per
  type of the search space (its q/k/v/out projections, relative-key table, LRPE parameters); only the selected
  one runs. LayerNorms, FFNs, embeddings and the head are shared.

The forward pass of an architecture *is* the standalone model's forward: the super-network builds the
``MixFormer`` model of the architecture once (cached) and runs it with ``torch.func.functional_call`` on the
sliced views of its own parameters, so gradients reach the shared store and the sub-network computes exactly
what its exported checkpoint computes (``export``). Dropout and activation dropout are scaled by
``d / d_max`` (HAT's rule).

Training: :class:`SubnetSamplingCallback` draws one architecture per optimiser step (uniform, seeded with the
step) inside a normal ``transformers.Trainer``; all micro-batches of a gradient-accumulation step share it.
"""

from __future__ import annotations

import copy
import json
import math
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from .search_space import Arch, SearchSpace, get_search_space
from ..layers.attention import ATTENTION_VARIANTS, resolve_variant
from ..models.modeling_common import migrate_state_dict

SUPERNET_CONFIG_NAME = "supernet_config.json"
SUPERNET_WEIGHTS_NAME = "supernet.safetensors"
SUPERNET_FORMAT = "lrpe_hf.nas.supernet"
SUPERNET_FORMAT_VERSION = 2  # 2: attention keys o_proj/position_encoding/attention_norm (1: out_proj/encoding/norm)

# Config fields owned by the search space (set per architecture), never by the fixed model settings.
ARCH_FIELDS = (
    "hidden_size", "num_hidden_layers", "layer_attention_type", "layer_position_encoding", "layer_ffn_dim",
    "layer_num_heads", "head_dim", "decoder_layers", "decoder_layer_attention_type",
    "decoder_layer_position_encoding", "decoder_layer_ffn_dim", "decoder_layer_num_heads",
    "decoder_layer_cross_num_heads", "is_encoder_decoder",
)


def arch_to_config(arch: Arch, space: SearchSpace, **model_kwargs):
    """The ``MixFormerConfig`` of an architecture (fixed settings such as ``image_size``, ``num_labels`` or
    ``vocab_size`` come from ``model_kwargs``)."""
    from transformers import AutoConfig


    space.validate_arch(arch)
    bad = sorted(set(model_kwargs) & set(ARCH_FIELDS))
    if bad:
        raise ValueError(f"{bad} are set by the architecture, not by the fixed model settings")
    enc = arch.encoder
    kwargs = dict(
        hidden_size=arch.embed_dim,
        num_hidden_layers=enc.depth,
        layer_attention_type=[resolve_variant(a)[0] for a in enc.attention_types],
        layer_position_encoding=[resolve_variant(a)[1] for a in enc.attention_types],
        layer_ffn_dim=list(enc.ffn_dims),
        layer_num_heads=list(enc.num_heads),
        head_dim=space.head_dim,
        is_encoder_decoder=arch.decoder is not None,
    )
    if arch.decoder is not None:
        dec = arch.decoder
        kwargs.update(
            decoder_layers=dec.depth,
            decoder_layer_attention_type=[resolve_variant(a)[0] for a in dec.attention_types],
            decoder_layer_position_encoding=[resolve_variant(a)[1] for a in dec.attention_types],
            decoder_layer_ffn_dim=list(dec.ffn_dims),
            decoder_layer_num_heads=list(dec.num_heads),
            decoder_layer_cross_num_heads=list(dec.num_heads),
        )
    return AutoConfig.for_model("mixformer", **kwargs, **model_kwargs)


def _variants(names, types, encodings) -> list[str]:
    """The search-space operation of every layer (a pair of attention type and encoding no space names is refused)."""
    for i, name in enumerate(names):
        if name is None:
            raise ValueError(f"layer {i}: attention_type={types[i]!r} with position_encoding={encodings[i]!r} is no "
                             f"operation of a search space (they are {tuple(ATTENTION_VARIANTS)})")
    return list(names)


def config_to_arch(config, space: SearchSpace) -> Arch:
    """The architecture of a ``MixFormerConfig`` (raises ValueError if it is outside the search space)."""
    from .search_space import LayerStack

    if config.head_dim != space.head_dim:
        raise ValueError(f"head_dim={config.head_dim} differs from the search space's head_dim={space.head_dim}")
    enc = LayerStack(config.num_hidden_layers, config.layer_ffn_dim, config.layer_num_heads,
                     _variants(config.layer_variants(), config.layer_attention_type, config.layer_position_encoding))
    dec = None
    if getattr(config, "is_encoder_decoder", False):
        if list(config.decoder_layer_cross_num_heads) != list(config.decoder_layer_num_heads):
            raise ValueError("the search space ties cross-attention heads to decoder self-attention heads")
        dec = LayerStack(config.decoder_layers, config.decoder_layer_ffn_dim, config.decoder_layer_num_heads,
                         _variants(config.layer_variants(decoder=True), config.decoder_layer_attention_type,
                                   config.decoder_layer_position_encoding))
    return space.validate_arch(Arch(config.hidden_size, enc, dec))


def _model_class(config):
    import transformers

    auto = transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder else transformers.AutoModelForImageClassification
    return auto._model_mapping[type(config)]


def _build(config, init: bool = True):
    """A standalone model for ``config``; ``init=False`` skips weight initialisation (weights come from the store)."""
    from transformers.initialization import no_init_weights

    cls = _model_class(config)
    if init:
        return cls(config)
    with no_init_weights():
        model = cls(config)
    model.tie_weights()  # no_init_weights also skips the tying done by init_weights
    return model


def _attention_paths(model) -> dict[str, str]:
    """Module path -> attention variant (``"lrpe"``, ``"softmax"``, ...) of every attention module of a model."""
    from ..layers.attention import MultiHeadAttentionBase, variant_name

    return {name: variant_name(m.attention_type, m.position_encoding.name)
            for name, m in model.named_modules() if isinstance(m, MultiHeadAttentionBase)}


def _state_entries(model):
    """Parameters (tied ones once) and persistent buffers, as ``name -> tensor``."""
    out = OrderedDict((n, p) for n, p in model.named_parameters())
    persistent = {n for n, _ in model.state_dict(keep_vars=True).items()}
    for n, b in model.named_buffers():
        if n in persistent:
            out[n] = b
    return out


def _mangle(key: str) -> str:
    return key.replace(".", "/")


class MixFormerSuperNetwork(nn.Module):
    """Weight-sharing super-network (see the module docstring).

    Args:
        space: a :class:`SearchSpace` or a preset name.
        model_kwargs: fixed ``MixFormerConfig`` settings (``image_size``, ``patch_size``, ``num_labels``,
            ``vocab_size``, dropout rates, ...); the architecture fields come from the search space.
        seed: seed of the weight initialisation.
    """

    accepts_loss_kwargs = False  # Trainer must not pass num_items_in_batch: the sub-network computes its own mean

    def __init__(self, space: SearchSpace | str, model_kwargs: dict | None = None, seed: int = 0):
        super().__init__()
        self.space = get_search_space(space)
        self.model_kwargs = dict(model_kwargs or {})
        self.seed = seed
        self._types = sorted({t for s in self.space.stacks() for t in s.attention_types})
        # One maximal model per attention type; shared weights come from the first, attention weights from each.
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            variants = {t: _build(self._max_config(t)) for t in self._types}
        finally:
            torch.random.set_rng_state(generator_state)
        paths = {t: _attention_paths(m) for t, m in variants.items()}
        first = paths[self._types[0]]
        # Attention modules whose type changes with the variant are type-specific; the others (cross-attention,
        # always softmax) are shared.
        self._typed_paths = sorted(p for p in first if len({paths[t].get(p) for t in self._types}) > 1)
        self.weights = nn.ParameterDict()
        self.fixed = {}  # store key -> persistent buffer (e.g. an LRPE permutation table)
        self._store_keys: dict[str, str] = {}
        for t, model in variants.items():
            for name, tensor in _state_entries(model).items():
                key = self._store_key(name, paths[t])
                if key in self._store_keys:
                    continue
                self._store_keys[key] = _mangle(key)
                if isinstance(tensor, nn.Parameter):
                    self.weights[_mangle(key)] = nn.Parameter(tensor.detach().clone(), requires_grad=tensor.requires_grad)
                else:
                    self.register_buffer("fixed__" + _mangle(key).replace("/", "__"), tensor.detach().clone())
                    self.fixed[key] = "fixed__" + _mangle(key).replace("/", "__")
        self.main_input_name = _model_class(variants[self._types[0]].config).main_input_name
        self._skeletons: OrderedDict[str, nn.Module] = OrderedDict()
        self._max_skeletons = 4
        self._param_counts: dict[str, int] = {}
        self._active: Arch = self.space.largest_arch(self._types[0] if self._types[0] in self.space.encoder.attention_types else None)

    # ------------------------------------------------------------------------------------------ building
    def _max_config(self, attention_type: str):
        def widest(stack):
            t = attention_type if attention_type in stack.attention_types else stack.attention_types[0]
            d = stack.max_depth
            from .search_space import LayerStack

            return LayerStack(d, (max(stack.ffn_dims),) * d, (max(stack.num_heads),) * d, (t,) * d)

        arch = Arch(max(self.space.embed_dims), widest(self.space.encoder),
                    widest(self.space.decoder) if self.space.decoder is not None else None)
        return arch_to_config(arch, self.space, **self.model_kwargs)

    def _store_key(self, name: str, attention_paths: dict[str, str]) -> str:
        for path in self._typed_paths:
            if name.startswith(path + "."):
                return f"{attention_paths[path]}::{name}"
        return name

    def sub_config(self, arch: Arch, scale_dropout: bool = True):
        """The ``MixFormerConfig`` of ``arch`` (dropout and activation dropout scaled by d / d_max)."""
        kwargs = dict(self.model_kwargs)
        if scale_dropout:
            ratio = arch.embed_dim / max(self.space.embed_dims)
            for name in ("hidden_dropout_prob", "activation_dropout"):
                if name in kwargs:
                    kwargs[name] = kwargs[name] * ratio
        if kwargs.get("drop_path_rate"):
            # Drop-path rises linearly over the layer *slots* of the super-network (layer i of every sub-network
            # gets the rate of slot i), so a shallower sub-network stops at a lower rate.
            slots = self.space.encoder.max_depth
            kwargs["drop_path_rate"] = kwargs["drop_path_rate"] * (arch.encoder.depth - 1) / max(slots - 1, 1)
        return arch_to_config(arch, self.space, **kwargs)

    def _skeleton(self, arch: Arch) -> nn.Module:
        key = arch.key()
        if key in self._skeletons:
            self._skeletons.move_to_end(key)
            model = self._skeletons[key]
        else:
            model = _build(self.sub_config(arch), init=False)
            self._skeletons[key] = model
            while len(self._skeletons) > self._max_skeletons:
                self._skeletons.popitem(last=False)
        ref = next(iter(self.weights.values()))
        model.to(device=ref.device)
        model.train(self.training)
        return model

    # ----------------------------------------------------------------------------------------- slicing
    def _store_tensor(self, key: str) -> torch.Tensor:
        if key in self.fixed:
            return getattr(self, self.fixed[key])
        return self.weights[self._store_keys[key]]

    def sliced_state(self, arch: Arch, skeleton: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """``name -> prefix slice`` (views of the store) for every parameter and persistent buffer of the
        standalone model of ``arch``."""
        self.space.validate_arch(arch)
        skeleton = skeleton if skeleton is not None else self._skeleton(arch)
        paths = _attention_paths(skeleton)
        out = {}
        for name, tensor in _state_entries(skeleton).items():
            key = self._store_key(name, paths)
            if key not in self._store_keys and key not in self.fixed:
                raise KeyError(f"the super-network has no weight for {name!r} ({key!r})")
            full = self._store_tensor(key)
            if full.dim() != tensor.dim() or any(s > f for s, f in zip(tensor.shape, full.shape)):
                raise ValueError(f"{name}: sub-network shape {tuple(tensor.shape)} does not fit in the super-network's {tuple(full.shape)}")
            out[name] = full[tuple(slice(0, s) for s in tensor.shape)] if tuple(tensor.shape) != tuple(full.shape) else full
        return out

    def num_parameters(self, arch: Arch | None = None, exclude_embeddings: bool = False) -> int:
        """Exact parameter count of the standalone model of ``arch`` (default: the active one; tied weights once).
        ``exclude_embeddings`` is accepted for Trainer's FLOPs estimate and ignored."""
        arch = self._active if arch is None else arch
        key = arch.key()
        if key not in self._param_counts:
            self._param_counts[key] = count_parameters(self.sub_config(arch))
        return self._param_counts[key]

    # ------------------------------------------------------------------------------------------ running
    @property
    def active_arch(self) -> Arch:
        return self._active

    def set_active_arch(self, arch: Arch) -> None:
        self._active = self.space.validate_arch(arch)

    def forward(self, *args, labels=None, **kwargs):
        """The forward of the active sub-network (same inputs and outputs as the standalone ``mixformer``)."""
        skeleton = self._skeleton(self._active)
        if labels is not None:
            kwargs["labels"] = labels
        return torch.func.functional_call(skeleton, self.sliced_state(self._active, skeleton), args, kwargs,
                                          tie_weights=True, strict=False)

    def export(self, arch: Arch | None = None):
        """A standalone ``mixformer`` model (its own copy of the sliced weights) of ``arch`` (default: active).

        The exported config keeps the scaled dropout of the slice; dropout is inactive in ``eval()`` anyway."""
        arch = self._active if arch is None else self.space.validate_arch(arch)
        model = _build(self.sub_config(arch), init=False)
        state = {k: v.detach().clone() for k, v in self.sliced_state(arch, model).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Tied names (lm_head / embed_tokens -> shared) are the same Parameter as a loaded one; non-persistent
        # buffers are rebuilt by the model itself.
        loaded_ids = {id(t) for n, t in model.state_dict(keep_vars=True).items() if n in state}
        current = model.state_dict(keep_vars=True)
        missing = [m for m in missing if m not in dict(model.named_buffers()) and id(current[m]) not in loaded_ids]
        if unexpected or missing:
            raise RuntimeError(f"export mismatch: missing {missing}, unexpected {unexpected}")
        if hasattr(model, "tie_weights"):
            model.tie_weights()
        return model.to(next(iter(self.weights.values())).device).eval()

    # ---------------------------------------------------------------------------------------- save/load
    def config_dict(self) -> dict:
        return {
            "format": SUPERNET_FORMAT,
            "format_version": SUPERNET_FORMAT_VERSION,
            "search_space": self.space.to_dict(),
            "model_kwargs": self.model_kwargs,
            "seed": self.seed,
        }

    def save_pretrained(self, save_directory) -> None:
        """Write ``supernet_config.json`` and ``supernet.safetensors`` (atomically: a temporary folder first)."""
        import os
        import shutil
        import tempfile

        from safetensors.torch import save_file

        target = Path(save_directory)
        if target.exists() and not target.is_dir():
            raise ValueError(f"{target} exists and is not a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            tensors = {k: self._store_tensor(k).detach().contiguous().cpu() for k in list(self._store_keys) + list(self.fixed)}
            save_file(tensors, str(tmp / SUPERNET_WEIGHTS_NAME), metadata={"format": SUPERNET_FORMAT})
            (tmp / SUPERNET_CONFIG_NAME).write_text(json.dumps(self.config_dict(), indent=1, sort_keys=True))
            target.mkdir(parents=True, exist_ok=True)
            for item in tmp.iterdir():
                os.replace(item, target / item.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def from_pretrained(cls, directory, search_space: SearchSpace | str | None = None, map_location: str = "cpu"):
        """Load a saved super-network. With ``search_space``, refuse a checkpoint trained for another space."""
        from safetensors.torch import load_file

        d = Path(directory)
        cfg_path = d / SUPERNET_CONFIG_NAME
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{d} is not a super-network checkpoint (no {SUPERNET_CONFIG_NAME})")
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("format") != SUPERNET_FORMAT:
            raise ValueError(f"{cfg_path} is not a {SUPERNET_FORMAT} config")
        version = cfg.get("format_version", 1)
        if not isinstance(version, int) or version > SUPERNET_FORMAT_VERSION:
            raise ValueError(f"{cfg_path} has format_version {version!r}; this lrpe_hf reads versions up to "
                             f"{SUPERNET_FORMAT_VERSION}: upgrade lrpe_hf")
        saved_space = get_search_space(cfg["search_space"])
        if search_space is not None:
            wanted = get_search_space(search_space)
            if wanted.structure() != saved_space.structure():
                diff = [k for k in wanted.structure() if wanted.structure()[k] != saved_space.structure().get(k)]
                raise ValueError(
                    f"super-network checkpoint {d} was trained for search space {saved_space.name!r}, which does not "
                    f"match the requested {wanted.name!r} (differs in {diff}); train a super-network for this space"
                )
        model = cls(saved_space, cfg.get("model_kwargs", {}), seed=cfg.get("seed", 0))
        weights_path = d / SUPERNET_WEIGHTS_NAME
        if not weights_path.is_file():
            raise FileNotFoundError(f"{weights_path} is missing")
        tensors = load_file(str(weights_path), device=map_location)
        if version < 2:  # the attention parameters' names before the one attention module
            tensors = migrate_state_dict(tensors, "mixformer")
        expected = {k: tuple(model._store_tensor(k).shape) for k in list(model._store_keys) + list(model.fixed)}
        got = {k: tuple(v.shape) for k, v in tensors.items()}
        if expected != got:
            missing = sorted(set(expected) - set(got))[:5]
            extra = sorted(set(got) - set(expected))[:5]
            shapes = [f"{k}: {got[k]} vs {expected[k]}" for k in expected if k in got and got[k] != expected[k]][:5]
            raise ValueError(
                f"super-network weights in {weights_path} do not match its search space {saved_space.name!r}: "
                f"missing {missing}, unexpected {extra}, shape mismatches {shapes}"
            )
        with torch.no_grad():
            for k, v in tensors.items():
                model._store_tensor(k).copy_(v)
        return model


def count_parameters(config) -> int:
    """Exact parameter count of the standalone model of ``config`` (tied weights once).

    Built on the meta device (no memory, no initialisation) when the model allows it, else on the CPU."""
    from transformers.initialization import no_init_weights

    try:
        with torch.device("meta"), no_init_weights():
            model = _model_class(config)(config)
    except (RuntimeError, NotImplementedError):
        with no_init_weights():
            model = _model_class(config)(config)
    model.tie_weights()
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- training
def make_sampling_callback(supernet: MixFormerSuperNetwork, seed: int = 0):
    """A ``TrainerCallback`` that activates a uniformly drawn sub-network at the start of every optimiser step."""
    from transformers import TrainerCallback

    class SubnetSamplingCallback(TrainerCallback):
        """``on_step_begin``: arch = uniform sample seeded with (seed, global step). Trainer calls it once per
        optimiser step, before the first micro-batch, so a gradient-accumulation step uses one sub-network and
        every data-parallel worker (same step) draws the same one."""

        def __init__(self):
            self.supernet, self.seed, self.history = supernet, seed, []

        def on_step_begin(self, args, state, control, **kwargs):
            arch = self.supernet.space.sample_arch(self.seed * 1_000_003 + state.global_step)
            self.supernet.set_active_arch(arch)
            self.history.append((state.global_step, arch))

    return SubnetSamplingCallback()




@torch.no_grad()
def evaluate_arch(supernet: MixFormerSuperNetwork, arch: Arch, batches, max_batches: int | None = None) -> dict:
    """Validation score of the slice ``arch``: ``{"accuracy", "loss"}`` (classification) or ``{"loss"}``
    (seq2seq, token-level mean over non-ignored labels). ``batches``: an iterable of model-input dicts."""
    was_training = supernet.training
    supernet.eval()
    supernet.set_active_arch(arch)
    correct = total = 0
    loss_sum, loss_count = 0.0, 0
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            out = supernet(**batch)
            labels = batch["labels"]
            if labels.dim() == 1:  # classification
                correct += int((out.logits.argmax(-1) == labels).sum())
                total += labels.numel()
                loss_sum += float(out.loss) * labels.numel()
                loss_count += labels.numel()
            else:
                n = int((labels != -100).sum())
                loss_sum += float(out.loss) * n
                loss_count += n
    finally:
        supernet.train(was_training)
    result = {"loss": loss_sum / max(loss_count, 1)}
    if total:
        result["accuracy"] = correct / total
    return result
