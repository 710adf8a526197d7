"""``interp patch``: activation (or attribution) patching of one prompt pair (see `interp.patching`).

    interp patch --clean "When Mary and John went to the store, John gave a drink to" \\
                 --corrupted "When Mary and John went to the store, Mary gave a drink to" \\
                 --answer " Mary" --wrong " John" --component heads --position final [--method attribution] [--json]

``--json`` prints one document: ``{"model", "component", "position", "method", "metric": "logit_diff", "clean",
"corrupted", "tokens_clean", "tokens_corrupted", "rows": [{"layer", "head", "position", "value",
"normalized"}]}``: ``value`` is the logit difference after the patch, ``normalized`` = (value - corrupted) /
(clean - corrupted), ``head`` / ``position`` null where they do not apply, ``position`` counted from 0 in
``tokens_corrupted``. Without ``--json``: the baselines and the largest effects.
"""

from __future__ import annotations

import argparse

from interp.cli._common import add_device_args

HELP = "activation / attribution patching of a clean and a corrupted prompt"
COMPONENTS = ("heads", "attn_out", "mlp_out", "resid_pre", "resid_mid", "resid_post", "q", "k", "v", "pattern")


def _position(text: str):
    if text in ("final", "all"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'final', 'all' or a token index, got {text!r}") from None


def _token(text: str):
    """A token id if the text is a number, else the (one-token) string itself."""
    return int(text) if text.strip().lstrip("-").isdigit() and text == text.strip() else text


def add_parser(sub) -> None:
    p = sub.add_parser("patch", help=HELP, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="model name (default: smollm2-135m, offline)")
    add_device_args(p)
    p.add_argument("--clean", required=True, help="the clean prompt (the model answers --answer)")
    p.add_argument("--corrupted", required=True, help="the corrupted prompt (the same length for --position all / INDEX)")
    p.add_argument("--answer", required=True, type=_token, help="the right answer: a one-token string (e.g. ' Mary') or a token id")
    p.add_argument("--wrong", required=True, type=_token, help="the wrong answer the metric compares against")
    p.add_argument("--component", default="heads", choices=COMPONENTS,
                   help="what to patch per layer: each head's output (heads), or a layer's attn_out / mlp_out / residual stream")  # fmt: skip
    p.add_argument("--position", default="final", type=_position,
                   help="final (the final token; fast), all (each position on its own), or a token index")
    p.add_argument("--method", default="exact", choices=("exact", "attribution"),
                   help="exact patching, or attribution patching (gradient x activation difference)")
    p.add_argument("--direction", default="denoising", choices=("denoising", "noising"),
                   help="denoising: clean activations into the corrupted run (default); noising: the reverse")
    p.add_argument("--top", type=int, default=10, help="rows shown without --json (largest |effect|)")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    import json

    from interp.models import load_model, parse_dtype
    from interp.patching import patch

    model = load_model(args.model, device=args.device, dtype=parse_dtype(args.dtype), verbose=not args.json)
    result = patch(
        model, args.clean, args.corrupted, "logit_diff", answer=args.answer, wrong=args.wrong,
        component=args.component, position=args.position, method=args.method, direction=args.direction,
    )  # fmt: skip
    doc = result.to_dict()
    doc["model"] = args.model
    if args.json:
        print(json.dumps(doc))
        return 0
    frame = result.to_frame()
    frame = frame.reindex(frame["normalized"].abs().sort_values(ascending=False).index).head(args.top)
    print(f"{result!r}\nlogit difference: clean {result.clean:.4f}, corrupted {result.corrupted:.4f}")
    print(frame.to_string(index=False))
    return 0
