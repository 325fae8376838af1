"""``lrpe-hf generate MODEL_DIR --prompt TEXT``: continue a prompt with a saved causal language model."""

from __future__ import annotations


def _run(args) -> int:
    from lrpe_hf.training.clm import generate_text, load_causal_lm

    if args.prompt_file is not None:
        with open(args.prompt_file, encoding="utf-8") as f:
            prompt = f.read()
    else:
        prompt = args.prompt
    model, tokenizer = load_causal_lm(args.model_dir, device=args.device)
    for i in range(args.num_samples):
        text = generate_text(
            model,
            tokenizer,
            prompt,
            max_new_tokens=args.max_new_tokens,
            do_sample=args.do_sample,
            temperature=args.temperature,
            top_k=args.top_k,
            num_beams=args.num_beams,
            seed=args.seed + i,
        )
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        print(prompt + text if args.echo_prompt else text, flush=True)
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"expected a positive integer, got {value}")
    return number


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate text from a saved causal LM folder",
        description="Continue a prompt with a causal LM saved by `lrpe-hf train clm` (or any Transformers causal LM folder).",
    )
    parser.add_argument("model_dir", help="folder with config.json, the safetensors weights and the tokenizer")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prompt", default="", help="text to continue (default: start from the BOS token)")
    source.add_argument("--prompt_file", help="read the prompt from this UTF-8 file")
    parser.add_argument("--max_new_tokens", type=_positive, default=64)
    parser.add_argument("--greedy", dest="do_sample", action="store_false", help="greedy (or beam) decoding instead of sampling")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top_k", type=int, default=50)
    parser.add_argument("--num_beams", type=_positive, default=1, help="beam search width (use with --greedy)")
    parser.add_argument("--num_samples", type=_positive, default=1, help="number of continuations (seeds seed, seed+1, ...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: where the model loads)")
    parser.add_argument("--no_echo_prompt", dest="echo_prompt", action="store_false", help="print only the continuation")
    parser.set_defaults(func=_run)
