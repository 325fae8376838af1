"""`lrpe-hf smooth INPUT... --model DIR --output_dir OUT [--save_maps]`: smooth image files with a DGFN model.

Any size, gray or RGB(A), 8 or 16 bit. The smoothed image is written as `<OUT>/<name>.png` in the input's kind
(gray stays gray, 16-bit stays 16-bit); `--save_maps` adds `<name>_texture.png` and `<name>_structure.png`.
A file that fails is reported and skipped; the exit status is 1 if any failed. Inputs are never overwritten.
"""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("smooth", help="smooth images with a trained DGFN model", description=__doc__)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files")
    p.add_argument("--model", required=True, help="folder (or Hub id) of a DgfnForImageSmoothing")
    p.add_argument("--output_dir", required=True, help="folder for the results (created if missing)")
    p.add_argument("--save_maps", action="store_true", help="also write the texture and structure maps")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files (never an input)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda:0 (default: cpu)")
    p.set_defaults(func=run)


def _plan_outputs(inputs: list[Path], output_dir: Path, save_maps: bool) -> list[dict[str, Path]]:
    """Output paths per input; stems shared by several inputs get `_2`, `_3`, ... so no result overwrites another."""
    used: set[str] = set()
    plans = []
    for path in inputs:
        stem, k = path.stem, 1
        name = stem
        while name in used:
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        plan = {"image": output_dir / f"{name}.png"}
        if save_maps:
            plan["texture_map"] = output_dir / f"{name}_texture.png"
            plan["structure_map"] = output_dir / f"{name}_structure.png"
        plans.append(plan)
    return plans


def run(args) -> int:
    from ..models.dgfn.pipeline_dgfn import SmoothingPipeline, write_image

    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} exists and is not a folder")
    inputs = [Path(p) for p in args.inputs]
    input_set = {p.resolve() for p in inputs}
    plans = _plan_outputs(inputs, output_dir, args.save_maps)
    # refuse up front: writing any result onto an input would destroy user data
    for path, plan in zip(inputs, plans):
        for out in plan.values():
            if out.resolve() in input_set:
                raise ValueError(f"output {out} would overwrite input {path}; choose another --output_dir")

    try:
        pipe = SmoothingPipeline(args.model, device=args.device)
    except OSError as err:
        if Path(args.model).expanduser().exists():
            raise
        # Not a folder here: Transformers then tried the Hub and reports a connection problem, not the typo.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileNotFoundError(f"--model {args.model}: no such folder, and not loadable as a Hub id ({reason})") from err
    output_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for index, (path, plan) in enumerate(zip(inputs, plans), start=1):
        try:
            existing = [str(p) for p in plan.values() if p.exists()]
            if existing and not args.overwrite:
                raise ValueError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace")
            result = pipe.smooth(path)
            arrays = pipe.to_arrays(result)
            for key, out in plan.items():
                write_image(out, arrays[key])
            h, w = result.image.shape[:2]
            print(f"[{index}/{len(inputs)}] {path} ({w}x{h}) -> {plan['image']}", flush=True)
        except (ValueError, OSError, RuntimeError) as err:  # report, go on with the next file
            failed += 1
            message = str(err).removeprefix(f"{path}: ")
            print(f"[{index}/{len(inputs)}] {path}: error: {message}", file=sys.stderr, flush=True)
    if failed:
        print(f"{failed} of {len(inputs)} file(s) failed", file=sys.stderr)
        return 1
    return 0
