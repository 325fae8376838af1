"""The analytic memory estimate of a training step and of the longest evaluation, and the check that refuses a
comparison that cannot fit (before any data is prepared or model trained)."""

from __future__ import annotations

import math

from .settings import CompareSettings, build_config

# ------------------------------------------------------------------------------------------------ memory check


def _available_memory_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        raise


def estimate_memory(config, *, batch_size: int, context: int, eval_batch_size: int, eval_length: int) -> dict:
    """Analytic float32 memory estimate (bytes) of one training step and of the longest evaluation forward.

    Training keeps, per token and layer, the activations autograd saves: about ``13 H + 2 I`` floats for
    projections, feature maps, norms, residuals and the MLP, plus the position-encoded q/k (``2 h d'``, d' = 2d for
    the encoding's ``output_dim``), plus the attention itself -- for chunked linear attention the
    intra-chunk scores (``2 h C``) and the chunk states (``2 h d' d / C``), for softmax attention the score and
    probability matrices (``3 h n``). The output layer keeps ``3 V`` floats per token (logits, log-softmax, grad).
    Parameters, gradients and two Adam moments cost ``16 P`` bytes. Evaluation keeps only one layer's working set.
    """
    from ...layers.position_encoding import build_position_encoding

    H, L, h = config.hidden_size, config.num_hidden_layers, config.num_attention_heads
    d, I, V, C = config.head_dim, config.intermediate_size, config.vocab_size, config.chunk_size
    # The encoded q/k width, as the registered encoding reports it (2d for the unitary core, cosFormer, LRPE-d).
    dq = build_position_encoding(config.position_encoding, d, h, core=config.lrpe_core, p=config.lrpe_p).output_dim
    softmax = config.attention_type == "softmax"

    def attention_floats(n: int) -> float:
        if softmax:
            return 3 * h * n
        chunk = min(C, n)
        return 2 * h * chunk + 2 * h * dq * d / chunk

    per_token_train = L * (13 * H + 2 * I + 2 * h * dq + attention_floats(context)) + 3 * V
    n_params = V * H + L * (4 * H * H + 2 * H * I)
    train = 4 * batch_size * context * per_token_train + 16 * n_params
    per_token_eval = 6 * H + I + 2 * h * dq + attention_floats(eval_length) + 2 * V
    evaluation = 4 * eval_batch_size * eval_length * per_token_eval + 4 * n_params
    return {"train_step": int(train), "eval_forward": int(evaluation), "parameters_estimate": int(n_params),
            "train_per_sequence": int(4 * context * per_token_train), "attention_per_token": attention_floats(context)}


def check_memory(settings: CompareSettings, encodings: list[str], tasks: list[str], vocab_size: int,
                 available: int, fraction: float = 0.8) -> dict:
    """Raise ``ValueError`` (with the batch or chunk size that would fit) if a step exceeds ``fraction`` of
    ``available`` bytes; returns the largest estimates."""
    budget = fraction * available
    worst: dict = {}
    for task in tasks:
        for enc in encodings:
            config = build_config(enc, task, settings, vocab_size)
            est = estimate_memory(config, batch_size=settings.batch_size, context=settings.context,
                                  eval_batch_size=_eval_batch_size(settings, max(settings.extrapolation)),
                                  eval_length=settings.max_eval_length)
            if est["train_step"] > worst.get("train_step", -1):
                worst = dict(est, encoding=enc, task=task)
            if est["train_step"] > budget:
                fixed = 16 * est["parameters_estimate"]
                fit = int((budget - fixed) // est["train_per_sequence"]) if budget > fixed else 0
                hints = []
                if fit >= 1:
                    acc = math.ceil(settings.batch_size * settings.gradient_accumulation_steps / fit)
                    hints.append(f"--batch_size {fit} with --gradient_accumulation_steps {acc} (same tokens per update)")
                else:
                    hints.append("a smaller --context or model (even one sequence per step does not fit)")
                if config.attention_type == "linear" and config.chunk_size > 16:
                    hints.append(f"a smaller --chunk_size (now {config.chunk_size}; the intra-chunk scores grow with it)")
                if config.attention_type == "softmax":
                    hints.append("a shorter --context (softmax attention keeps heads x context^2 scores per sequence)")
                raise ValueError(
                    f"the training step of {enc!r} ({task}) needs about {est['train_step'] / 2**30:.2f} GiB "
                    f"(batch {settings.batch_size} x context {settings.context}, analytic estimate) but only "
                    f"{available / 2**30:.2f} GiB are available ({fraction:.0%} usable); try " + " or ".join(hints)
                )
            if est["eval_forward"] > budget:
                raise ValueError(
                    f"evaluating {enc!r} ({task}) at {settings.max_eval_length} tokens needs about "
                    f"{est['eval_forward'] / 2**30:.2f} GiB but only {available / 2**30:.2f} GiB are available; "
                    f"lower --batch_size (evaluation uses batch_size / factor sequences) or the --extrapolation factors"
                )
    return worst


def _eval_batch_size(settings: CompareSettings, factor: int) -> int:
    return max(1, settings.batch_size // factor)
