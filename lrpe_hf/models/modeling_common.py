"""Behaviour shared by every model of the package (kept tiny: models stay readable on their own)."""

from __future__ import annotations

import json
import re
import warnings
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..version import __version__
from .checkpoint import CONFIG_NAME, VERSION_KEY, check_checkpoint_folder, check_version_compatible

# Files a save_pretrained of this package writes; those of a previous save that the new one does not write again
# (a single model.safetensors after a sharded save, or the other way round; an older bundle) are removed by the swap,
# since Transformers' own clean-up of stale weights runs in the temporary folder, not in the target.
_SAVE_OWNED = re.compile(
    r"^(config\.json|generation_config\.json"
    r"|model(\.[\w-]+)?(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?"
    r"|(configuration|modeling|image_processing)_\w+\.py|lrpe_hf__[\w.]+\.py)$"
)


def _swap_in(new_dir: Path, target: Path) -> None:
    """Replace the previous save in ``target`` by the files in ``new_dir``, all or nothing.

    The previous save's files (those the new save writes again, and the stale ones of ``_SAVE_OWNED``) are first
    moved aside into a sibling folder, then the new files are moved in (``os.replace``: atomic per file on one file
    system). If any move fails, every move made so far is undone, so ``target`` holds exactly the previous save;
    files the user keeps there (a tokenizer, notes) are never touched.
    """
    incoming = sorted(item.name for item in new_dir.iterdir())
    outgoing = sorted(
        item.name for item in target.iterdir() if item.name in incoming or _SAVE_OWNED.match(item.name)
    )
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for name in outgoing:
            os.replace(target / name, aside / name)
            moved_out.append(name)
        for name in incoming:
            os.replace(new_dir / name, target / name)
            moved_in.append(name)
    except BaseException:
        for name in reversed(moved_in):
            os.replace(target / name, new_dir / name)
        for name in reversed(moved_out):
            os.replace(aside / name, target / name)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


# Keyword arguments of save_pretrained(push_to_hub=True, ...) that belong to the upload, not to the save.
#: ``writer(folder, model_type)``, run after every save to bundle the remote code (``auto_map`` and the flat source
#: files). The package installs ``lrpe_hf.hub.remote_code.write_remote_code`` when it is imported; in a remote-code
#: bundle nothing installs one, and Transformers' own custom-code copy re-saves the flat folder.
_remote_code_writer = None


def set_remote_code_writer(writer) -> None:
    """Install the save-time bundling hook (``None`` switches it off)."""
    global _remote_code_writer
    _remote_code_writer = writer


_PUSH_KWARGS = ("commit_message", "commit_description", "private", "token", "revision", "create_pr", "tags")


class AtomicSaveMixin:
    """``save_pretrained``/``from_pretrained`` with the package's guarantees.

    Saving: everything is first written to a temporary sibling folder; only when that succeeded is the new set swapped
    in for the previous one (:func:`_swap_in`: all or nothing, stale files of the previous save removed). A failure
    while serialising (disk full, an exception in a hook, Ctrl-C) or while swapping leaves an existing checkpoint in
    ``save_directory`` intact. The saved
    ``config.json`` records the ``lrpe_hf_version`` that wrote it and, unless ``bundle_remote_code`` is False,
    the folder receives self-contained modeling code and an ``auto_map`` (``lrpe_hf.hub.remote_code``), so it --
    and a ``push_to_hub`` of it -- loads with ``trust_remote_code=True`` where ``lrpe_hf`` is not installed.

    Loading: a local folder is checked first (``lrpe_hf.models.checkpoint``): missing files, truncated or corrupt
    safetensors, another ``model_type`` or a newer incompatible ``lrpe_hf_version`` raise an error naming the file.
    """

    #: Write the remote-code bundle and ``auto_map`` on every save. Set to False on a class to opt out.
    bundle_remote_code: bool = True

    def save_pretrained(self, save_directory, *args, **kwargs):  # noqa: D401 - same contract as transformers
        if kwargs.pop("push_to_hub", False):
            # Save locally (atomically, with the bundle), then upload through push_to_hub, which saves again into
            # its own temporary folder -- so the upload carries the bundle too.
            push_kwargs = {key: kwargs.pop(key) for key in _PUSH_KWARGS if key in kwargs}
            repo_id = kwargs.pop("repo_id", None) or Path(save_directory).name
            result = self.save_pretrained(save_directory, *args, **kwargs)
            if "max_shard_size" in kwargs:
                push_kwargs["max_shard_size"] = kwargs["max_shard_size"]
            self.push_to_hub(repo_id, **push_kwargs)
            return result
        target = Path(save_directory)
        if target.exists() and not target.is_dir():
            raise ValueError(f"save_pretrained: {target} exists and is not a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            result = super().save_pretrained(tmp, *args, **kwargs)
            self._complete_saved_folder(tmp)
            target.mkdir(parents=True, exist_ok=True)
            _swap_in(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return result

    def _complete_saved_folder(self, folder: Path) -> None:
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():  # not the main process of a distributed save: nothing was written
            return
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config[VERSION_KEY] = __version__
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if self.bundle_remote_code and _remote_code_writer is not None:
            _remote_code_writer(folder, self.config.model_type)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        path = pretrained_model_name_or_path
        if path is not None and os.path.isdir(path):
            folder = Path(path) / kwargs.get("subfolder", "")
            variant = kwargs.get("variant")
            weights = f"model.{variant}.safetensors" if variant else "model.safetensors"
            # with an explicit state_dict or gguf_file the weights come from elsewhere
            needs_weights = kwargs.get("state_dict") is None and kwargs.get("gguf_file") is None
            expected = getattr(cls.config_class, "model_type", None)
            check_checkpoint_folder(
                folder,
                expected_model_types=(expected,) if expected else None,
                weights_name=weights,
                require_weights=needs_weights and kwargs.get("use_safetensors") is not False,
            )
        config = kwargs.get("config")
        if config is not None and not isinstance(config, (str, os.PathLike)):
            check_version_compatible(getattr(config, VERSION_KEY, None), source=f"config of {path}")
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        loaded = model[0] if isinstance(model, tuple) else model  # output_loading_info=True
        check_version_compatible(getattr(loaded.config, VERSION_KEY, None), source=f"config of {path}")
        return model


# ---------------------------------------------------------------------------------------------------------------
# The generation cache across Transformers releases
# ---------------------------------------------------------------------------------------------------------------
def _cache_field_name() -> str:
    """The name Transformers gives the generation cache: ``cache`` since 5.24, ``past_key_values`` before.

    Read from the output dataclass that ``generate`` reads the cache back from, so it follows the installed release
    rather than a version number.
    """
    import dataclasses

    from transformers.modeling_outputs import CausalLMOutputWithPast

    names = {field.name for field in dataclasses.fields(CausalLMOutputWithPast)}
    return "cache" if "cache" in names else "past_key_values"


#: Keyword under which this Transformers release passes the cache to ``forward`` and reads it from outputs.
CACHE_NAME = _cache_field_name()


def resolve_cache(cache=None, past_key_values=None, kwargs: dict | None = None):
    """One cache from the names a caller may use: ``cache``, or the older ``past_key_values``/``cache_params``
    (Transformers' names before 5.24, still in user code), which warn as deprecated where the release says ``cache``.
    ``cache_params`` is taken out of ``kwargs``. Two caches at once are refused rather than one silently dropped."""
    given = {"cache": cache, "past_key_values": past_key_values}
    if kwargs is not None and "cache_params" in kwargs:
        given["cache_params"] = kwargs.pop("cache_params")
    passed = {name: value for name, value in given.items() if value is not None}
    if len(passed) > 1:
        raise ValueError(f"pass the cache once: as `cache` (or one older name), not {' and '.join(passed)}")
    for old in passed.keys() - {CACHE_NAME}:
        if CACHE_NAME == "cache":
            warnings.warn(f"`{old}` is deprecated, pass the cache as `cache`", FutureWarning, stacklevel=3)
    return next(iter(passed.values()), None)


def cache_output(cache) -> dict:
    """``{name: cache}`` for an output dataclass, under the name the installed release reads."""
    return {CACHE_NAME: cache}


def reject_unknown_kwargs(owner: str, kwargs: dict, allowed: tuple[str, ...] = ()) -> dict:
    """Refuse keyword arguments a ``forward`` does not understand instead of swallowing them.

    A state-carrying argument renamed by a Transformers release (5.24: ``past_key_values`` -> ``cache``) used to
    vanish into ``**kwargs`` and generation silently restarted from an empty state; now it raises. ``allowed`` names
    the extra arguments Transformers legitimately passes (e.g. the Trainer's ``num_items_in_batch``); they are
    returned for the caller to use.
    """
    unknown = sorted(key for key in kwargs if key not in allowed)
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise TypeError(
            f"{owner}.forward() got unexpected keyword argument(s) {names}; it accepts its named parameters"
            + (f" and {', '.join(repr(a) for a in allowed)}" if allowed else "")
        )
    return kwargs


def refuse_output_attentions(owner: str, output_attentions) -> None:
    """Linear attention never forms the (seq x seq) attention matrix, so there are no weights to return."""
    if output_attentions:
        raise ValueError(
            f"{owner} cannot return attention weights (output_attentions=True): its linear-attention layers never "
            "form the attention matrix; use output_hidden_states=True for per-layer outputs"
        )


def check_pixel_values(pixel_values, owner: str) -> None:
    """Integer pixels (uint8 0-255) would be cast without scaling and give plausible but wrong outputs: refuse them
    and point at the image processor, which rescales and normalises."""
    if pixel_values is not None and not pixel_values.is_floating_point():
        raise ValueError(
            f"{owner}: pixel_values must be floating point (rescaled and normalised by the image processor), got "
            f"dtype {pixel_values.dtype}; run the images through the model's image processor first"
        )


_DRAFT_OPTIONS = ("assistant_model", "prompt_lookup_num_tokens")


def _given(kwargs: dict, name: str):
    value = kwargs.get(name)
    return value if value is not None else getattr(kwargs.get("generation_config"), name, None)


def prepare_rollback_decoding(model, kwargs: dict, build_cache) -> None:
    """Set up ``generate`` for assisted, speculative and prompt-lookup decoding, which verify drafted tokens in one
    forward pass and ``crop`` the cache back to the accepted ones (our linear layers roll back: ``cache_layers``).

    Such a run needs a cache that exists before the first forward pass; where ``generate`` does not build one (models
    that build their cache in ``forward``, and before Transformers 5.24), ``build_cache()`` gives it. When this model
    drafts for another (``generation_config.is_assistant``), its cache records from the start, since the main model
    crops it between rounds. Self-speculative early exit stays refused: these models cannot stop after a given layer.
    """
    if _given(kwargs, "assistant_early_exit") is not None:
        raise ValueError(
            f"{type(model).__name__} does not support assistant_early_exit (self-speculative decoding from an early "
            "layer): its layers have no exit head; use assistant_model= or prompt_lookup_num_tokens= instead"
        )
    config = kwargs.get("generation_config")
    is_assistant = bool(getattr(config, "is_assistant", False))
    if not is_assistant and all(_given(kwargs, name) is None for name in _DRAFT_OPTIONS):
        return
    if any(kwargs.get(name) is not None for name in ("cache", "past_key_values")) or _given(kwargs, "use_cache") is False:
        return  # the caller's cache, or none (Transformers then says that drafting needs one)
    cache = build_cache()
    if is_assistant:
        cache.activate_past_recording()
    kwargs[CACHE_NAME] = cache

# ------------------------------------------------------------------------------------------------------------------
# Packed (padding-free) batches
# ------------------------------------------------------------------------------------------------------------------
#: Keyword arguments Transformers' DataCollatorWithFlattening adds (besides position_ids) to mark document
#: boundaries in a packed row.
PACKING_KWARGS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "seq_idx")


def _documents_from_cu_seq_lens(cu, b: int, n: int, device) -> torch.Tensor:
    if not isinstance(cu, torch.Tensor) or cu.dim() != 1 or cu.is_floating_point() or cu.numel() < 2:
        raise ValueError("cu_seq_lens_q/k must be 1-D integer tensors of cumulative document lengths [0, ..., total]")
    cu = cu.to(device=device, dtype=torch.long)
    if int(cu[0]) != 0 or bool((cu.diff() < 0).any()) or int(cu[-1]) != b * n:
        raise ValueError(
            f"cu_seq_lens must start at 0, never decrease and end at the number of tokens in the batch ({b * n}), "
            f"got {cu.tolist()}"
        )
    row_starts = torch.arange(0, b * n, n, device=device)
    if not bool(torch.isin(row_starts, cu).all()):
        raise ValueError("cu_seq_lens puts a document across two rows of the batch; a document must lie in one row")
    return torch.searchsorted(cu[1:], torch.arange(b * n, device=device), right=True).view(b, n)


def packed_documents(kwargs: dict, position_ids, attention_mask, has_cache: bool, b: int, n: int, device):
    """The document index of every token ``(batch, n)`` for a packed (padding-free) batch, or None for an ordinary
    one, and the position ids to use (restarting at every document).

    Boundaries come from ``cu_seq_lens_q``/``cu_seq_lens_k`` (with ``max_length_q``/``max_length_k``) or ``seq_idx``
    when given, else from ``position_ids`` restarts (a position that is not its predecessor's plus one starts a
    document, as in Transformers' packed-sequence detection) when there is no attention mask and no cache. Every
    source given must agree with the others; a packed row carries no padding and continues no cache. Takes the
    packing keywords out of ``kwargs``.
    """
    given = {name: kwargs.pop(name) for name in PACKING_KWARGS if name in kwargs and kwargs[name] is not None}
    for name in PACKING_KWARGS:
        kwargs.pop(name, None)
    docs = None
    if "cu_seq_lens_q" in given or "cu_seq_lens_k" in given:
        cu_q, cu_k = given.get("cu_seq_lens_q"), given.get("cu_seq_lens_k")
        if cu_q is not None and cu_k is not None and not torch.equal(cu_q.cpu(), cu_k.cpu()):
            raise ValueError("cu_seq_lens_q and cu_seq_lens_k differ: self-attention needs the same documents for "
                             "queries and keys")
        cu = cu_q if cu_q is not None else cu_k
        docs = _documents_from_cu_seq_lens(cu, b, n, device)
        longest = int(cu.diff().max())
        for name in ("max_length_q", "max_length_k"):
            if name in given and int(given[name]) != longest:
                raise ValueError(f"{name}={int(given[name])} disagrees with cu_seq_lens, whose longest document "
                                 f"has {longest} tokens")
    elif "max_length_q" in given or "max_length_k" in given:
        raise ValueError("max_length_q/max_length_k describe packed documents only together with cu_seq_lens_q/k")
    if "seq_idx" in given:
        seq_idx = given["seq_idx"]
        if not isinstance(seq_idx, torch.Tensor) or seq_idx.is_floating_point() or seq_idx.shape[-1] != n \
                or seq_idx.dim() != 2 or seq_idx.shape[0] not in (1, b):
            raise ValueError(f"seq_idx must be an integer tensor of shape (batch={b}, {n}), got "
                             f"{getattr(seq_idx, 'shape', type(seq_idx))}")
        seq_idx = seq_idx.to(device=device, dtype=torch.long).expand(b, n)
        if n > 1 and bool((seq_idx.diff(dim=-1) < 0).any()):
            raise ValueError("seq_idx must be non-decreasing along each row (documents are packed one after another)")
        if docs is not None and not torch.equal(_starts(docs), _starts(seq_idx)):
            raise ValueError("seq_idx and cu_seq_lens mark different document boundaries")
        docs = seq_idx
    from_positions = None
    if position_ids is not None and position_ids.dim() == 2 and position_ids.shape[-1] == n:
        restarts = torch.ones(position_ids.shape, dtype=torch.bool, device=position_ids.device)
        restarts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
        from_positions = restarts.expand(b, n)
    if docs is None:
        if from_positions is None or attention_mask is not None or has_cache or not bool(from_positions[:, 1:].any()):
            return None, position_ids
        docs = from_positions.long().cumsum(-1) - 1
    elif from_positions is not None and not torch.equal(from_positions.to(device), _starts(docs)):
        raise ValueError("position_ids do not restart where the packed documents (cu_seq_lens / seq_idx) start; a "
                         "packed row's positions count from each document's first token")
    if has_cache:
        raise ValueError("a packed (padding-free) batch cannot continue or fill a cache: pass cache=None")
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        raise ValueError("a packed (padding-free) batch has no padding; drop the attention_mask or the packing")
    if position_ids is None:  # positions count from each document's first token
        index = torch.arange(n, device=device).expand(b, n)
        first = torch.where(_starts(docs), index, torch.zeros_like(index)).cummax(-1).values
        position_ids = index - first
    return docs, position_ids


def _starts(docs: torch.Tensor) -> torch.Tensor:
    """True at the first token of every document (and of every row)."""
    starts = torch.ones(docs.shape, dtype=torch.bool, device=docs.device)
    starts[:, 1:] = docs[:, 1:] != docs[:, :-1]
    return starts


def refuse_packed_batch(owner: str, kwargs: dict) -> None:
    """A model that cannot keep packed documents apart says so, instead of attending across them."""
    given = [name for name in (*PACKING_KWARGS, "position_ids") if kwargs.get(name) is not None]
    if given:
        raise ValueError(
            f"{owner} does not take packed (padding-free) batches ({', '.join(given)} given): its encoder-decoder "
            "attention would mix the packed examples; pad the batch instead (e.g. DataCollatorForSeq2Seq)"
        )


# ------------------------------------------------------------------------------------------ checkpoint key names
#: Attention parameters that moved when the image, seq2seq and language models came to share one attention module
#: (lrpe_hf 0.3): the image and seq2seq models said ``out_proj``, ``encoding``, ``norm`` and ``relative_key_table``
#: where every model now says ``o_proj``, ``position_encoding``, ``attention_norm`` and
#: ``position_encoding.relative_key_table``. Checkpoints keep the names
#: they were saved with: ``from_pretrained`` renames on load and ``save_pretrained`` renames back (Transformers'
#: checkpoint conversion mapping), so files written by any version load in every other.
ATTENTION_KEY_RENAMES = {
    "lrpe_vit": (
        (r"\.attention\.out_proj\.", ".attention.o_proj."),
        (r"\.attention\.encoding\.", ".attention.position_encoding."),
        (r"\.attention\.norm\.", ".attention.attention_norm."),
    ),
    "mixformer": (
        (r"_attn\.out_proj\.", "_attn.o_proj."),  # self_attn and (seq2seq) encoder_attn
        (r"\.self_attn\.encoding\.", ".self_attn.position_encoding."),
        (r"\.self_attn\.norm\.", ".self_attn.attention_norm."),
        (r"\.self_attn\.relative_key_table", ".self_attn.position_encoding.relative_key_table"),
    ),
}


def register_key_migration(model_type: str) -> None:
    """Register ``model_type``'s renamed keys with Transformers (once per process)."""
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping
    from transformers.core_model_loading import WeightRenaming

    if get_checkpoint_conversion_mapping(model_type) is not None:
        return
    register_checkpoint_conversion_mapping(
        model_type, [WeightRenaming(source, target) for source, target in ATTENTION_KEY_RENAMES[model_type]]
    )


def migrate_state_dict(state: dict, model_type: str) -> dict:
    """``state`` with ``model_type``'s old attention key names replaced (for loaders outside ``from_pretrained``)."""
    renames = [(re.compile(source), target) for source, target in ATTENTION_KEY_RENAMES[model_type]]
    out = {}
    for key, value in state.items():
        for pattern, target in renames:
            key = pattern.sub(target, "." + key, count=1)[1:] if pattern.search("." + key) else key
        out[key] = value
    return out
