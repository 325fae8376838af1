"""Settings of a comparison: the encodings compared, the size presets and :class:`CompareSettings`, and the
``LrpeConfig`` each encoding gets (:func:`build_config`)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

logger = logging.getLogger("lrpe_hf.compare")

# Encodings in table order: baselines, then the paper's four final LRPE configurations, then softmax attention.
# Each is an ``LrpeConfig.from_preset`` name.
ENCODINGS: tuple[str, ...] = (
    "nope",
    "rope",
    "cosformer",
    "permuteformer",
    "lrpe-d",
    "lrpe-rotation-householder-learned",
    "lrpe-permutation-householder",
    "lrpe-unitary-householder",
    "lrpe-unitary-householder-learned",
    "softmax",
)
ENCODING_LABELS = {
    "nope": "NoPE (1+elu linear attention)",
    "rope": "RoPE",
    "cosformer": "cosFormer",
    "permuteformer": "PermuteFormer",
    "lrpe-d": "LRPE-d",
    "lrpe-rotation-householder-learned": "LRPE rotation + Householder, learned θ",
    "lrpe-permutation-householder": "LRPE permutation + Householder",
    "lrpe-unitary-householder": "LRPE unitary + Householder, fixed θ",
    "lrpe-unitary-householder-learned": "LRPE unitary + Householder, learned θ",
    "softmax": "softmax transformer (reference)",
}
TASKS = ("clm", "mlm")
MASK_TOKEN = "<|mask|>"


@dataclass(frozen=True)
class SizePreset:
    """Model size and training budget of a named comparison size (every field can be overridden)."""

    base_size: dict  # LrpeConfig size per task (``LrpeConfig.from_preset(..., size=...)``)
    model: dict  # config fields applied on top of the base size (same for every encoding)
    context: int
    batch_size: int
    gradient_accumulation_steps: int
    max_steps: int
    learning_rate: float
    warmup_steps: int
    lr_scheduler_type: str
    weight_decay: float
    adam_beta2: float
    vocab_size: int
    corpus_max_bytes: int | None
    eval_tokens: int
    curve_eval_tokens: int
    eval_points: int


SIZES: dict[str, SizePreset] = {
    # A CPU budget of about a CPU-minute per model, so that 10 encodings x 2 seeds fit in under an hour of a shared
    # 2-core machine: 2 layers of width 128 (2 heads of 64, the paper's head size), context 256, 100 updates of
    # 4 x 256 tokens (102k training tokens). A smoke-scale budget: early-training behaviour only.
    "small": SizePreset(
        base_size={"clm": "small", "mlm": "small"},
        # Each encoding keeps its preset's absolute position embedding (sinusoidal, as in the paper's LMs; none for
        # NoPE), with token embeddings scaled by sqrt(d) as fairseq does (without that scale the APE's amplitude 1
        # swamped embeddings initialised at std 0.02 and held those models at the unigram plateau).
        model=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                   hidden_dropout_prob=0.0, attention_dropout=0.0, scale_embedding=True),
        context=256, batch_size=4, gradient_accumulation_steps=1, max_steps=100, learning_rate=2e-3,
        warmup_steps=10, lr_scheduler_type="cosine", weight_decay=0.01, adam_beta2=0.98, vocab_size=4096,
        corpus_max_bytes=3_000_000, eval_tokens=4096, curve_eval_tokens=1024, eval_points=5,
    ),
    # The paper's WikiText-103 sizes (arXiv 2307.09270, experiments): causal LM 6 x 512, encoder RoBERTa-base; 128 sequences of
    # 512 tokens per update, Adam (0.9, 0.98), wd 0.01, lr 5e-4, inverse-sqrt schedule. For GPUs.
    "wikitext": SizePreset(
        base_size={"clm": "wikitext-base", "mlm": "roberta-base"},
        model={},
        context=512, batch_size=16, gradient_accumulation_steps=8, max_steps=50_000, learning_rate=5e-4,
        warmup_steps=8000, lr_scheduler_type="inverse_sqrt", weight_decay=0.01, adam_beta2=0.98, vocab_size=32768,
        corpus_max_bytes=None, eval_tokens=262_144, curve_eval_tokens=32_768, eval_points=20,
    ),
}


@dataclass
class CompareSettings:
    """Everything that decides the numbers of a comparison (stored in ``comparison.json``)."""

    size: str = "small"
    context: int = 256
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_steps: int = 100
    learning_rate: float = 2e-3
    warmup_steps: int = 10
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.01
    adam_beta2: float = 0.98
    vocab_size: int = 4096
    chunk_size: int = 64
    config_overrides: dict = field(default_factory=dict)
    extrapolation: tuple[int, ...] = (1, 2, 4)
    eval_tokens: int = 4096
    curve_eval_tokens: int = 1024
    eval_points: int = 5
    mlm_probability: float = 0.15
    corpus: dict = field(default_factory=dict)
    tokenizer_name: str | None = None
    model: dict = field(default_factory=dict)  # config fields of the size preset (before config_overrides)

    @property
    def max_eval_length(self) -> int:
        return self.context * max(self.extrapolation)

    @property
    def tokens_per_update(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps * self.context

    def fingerprint(self) -> dict:
        data = asdict(self)
        data["extrapolation"] = list(self.extrapolation)
        return data


# ------------------------------------------------------------------------------------------------ configuration


def parse_encodings(value: str | list[str] | None) -> list[str]:
    """Encoding names from a comma/space separated string or list; ``None`` or ``"all"`` gives every encoding."""
    if value is None:
        return list(ENCODINGS)
    items = value if isinstance(value, (list, tuple)) else [value]
    names = [n.strip() for item in items for n in str(item).replace(",", " ").split() if n.strip()]
    if names == ["all"] or not names:
        return list(ENCODINGS)
    unknown = [n for n in names if n not in ENCODINGS]
    if unknown:
        raise ValueError(f"unknown encoding(s) {unknown}; valid encodings: {', '.join(ENCODINGS)} (or 'all')")
    return list(dict.fromkeys(names))


def parse_tasks(value: str) -> list[str]:
    if value == "both":
        return list(TASKS)
    if value not in TASKS:
        raise ValueError(f"unknown task {value!r}; choose one of clm, mlm, both")
    return [value]


def _parse_overrides(text: str | None) -> dict:
    """``"hidden_size=64,num_hidden_layers=1"`` -> dict with ints/floats/bools/None parsed."""
    out: dict = {}
    if not text:
        return out
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"--config_overrides entries must be key=value, got {part!r}")
        key, raw = (s.strip() for s in part.split("=", 1))
        for cast in (int, float):
            try:
                out[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
    return out


def build_config(encoding: str, task: str, settings: CompareSettings, vocab_size: int, tokenizer=None):
    """The ``LrpeConfig`` of one encoding for one task: preset + size + comparison-wide fields."""
    from lrpe_hf.models.lrpe.configuration_lrpe import LrpeConfig

    preset = SIZES[settings.size]
    fields = dict(settings.model)
    fields.update(
        vocab_size=vocab_size,
        chunk_size=settings.chunk_size,
        # Long enough for the longest evaluation: learned APE tables, cosFormer's M and permutation tables all
        # depend on it, and it is the same for every encoding.
        max_position_embeddings=settings.max_eval_length,
        is_causal=task == "clm",
    )
    if tokenizer is not None:
        fields.update(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      bos_token_id=tokenizer.bos_token_id)
    fields.update(settings.config_overrides)
    return LrpeConfig.from_preset(encoding, size=preset.base_size[task], **fields)
