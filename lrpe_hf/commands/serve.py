"""``lrpe-hf serve MODEL``: an OpenAI-compatible server (Transformers' own ``transformers serve``) for a causal LM."""

from __future__ import annotations

import sys


def run(args) -> int:
    from ..serving import ServeError, ServingInternalsChanged, serve

    options = dict(
        device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
        attn_implementation=args.attn_implementation, compile=args.compile, enable_cors=args.enable_cors,
        log_level=args.log_level, default_seed=args.default_seed, chat_template_kwargs=args.chat_template_kwargs,
    )
    try:
        serve(args.model, host=args.host, port=args.port, **options)
    except (ServeError, ServingInternalsChanged) as err:
        print(f"lrpe-hf serve: error: {err}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a causal LM over an OpenAI-compatible HTTP API (transformers serve)",
        description="Run Transformers' own OpenAI-compatible server pinned to one causal LM of this package (or any "
        "registered one): POST /v1/completions and /v1/chat/completions (streaming or not; chat needs a chat "
        "template in the tokenizer), GET /v1/models and /health. Requests name the model as given here. "
        "Needs the serving dependencies: pip install 'lrpe_hf[serve]'.",
    )
    parser.add_argument("model", help="folder with config.json, the safetensors weights and the tokenizer, or a Hub id")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="listen port (default: 8000)")
    parser.add_argument("--device", default="auto", help="torch device or 'auto' (default: auto)")
    parser.add_argument("--dtype", default="auto", help="torch dtype such as bfloat16, or 'auto': the checkpoint's")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom tokenizer code from the Hub")
    parser.add_argument("--attn_implementation", help="attention implementation for models that have several")
    parser.add_argument("--compile", action="store_true", help="generate with a static cache and torch.compile")
    parser.add_argument("--chat_template_kwargs", help="JSON object passed to the chat template of every request")
    parser.add_argument("--enable_cors", action="store_true", help="allow requests from any origin")
    parser.add_argument("--log_level", default="warning", choices=("debug", "info", "warning", "error", "critical"),
                        help="Transformers' log level (default: warning)")
    parser.add_argument("--default_seed", type=int, help="torch seed set once at start, for sampling")
    parser.set_defaults(func=run)
