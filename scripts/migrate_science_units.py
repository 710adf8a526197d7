"""Re-key stored science units from SmolLM2's old model fingerprint to the current one (one-off, checked).

The experiment units (`interp.experiments.units.UnitStore`) are keyed by, among other things, the model's
fingerprint. `interp.models.model_fingerprint` changed (it used to hash 64 values of one weight matrix; it now
samples every tensor, dtype-independently), so units computed on the *same* SmolLM2 weights before the change are
no longer found. This script moves them to the current key after two checks:

1. the old fingerprint algorithm, run on the model loaded now, gives the old fingerprint recorded in the units
   (same architecture and the same sampled weights);
2. ``--check-unit`` (optional): a unit recomputed under the current code and stored under the new key has the
   same per-query outcomes as its old counterpart (same prompts, same scores) — printed, and required to pass.

A unit whose new key already exists is left alone (the recomputed one wins). Each migrated record gets
``"migrated_from_fingerprint"``.

    python scripts/migrate_science_units.py --root results/science/units [--dry-run]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def old_fingerprint(model) -> str:
    """`model_fingerprint` as it was (commit 4a20635): architecture + the first 64 values of blocks.0 W_O."""
    import torch

    cfg = model.cfg
    parts = [cfg.model_name, cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab, cfg.n_key_value_heads]
    h = hashlib.sha256(json.dumps([str(p) for p in parts]).encode())
    with torch.no_grad():
        h.update(model.blocks[0].attn.W_O.flatten()[:64].double().cpu().numpy().round(5).tobytes())
    return h.hexdigest()[:16]


def main(argv=None) -> int:
    from interp.experiments.units import _jsonable, sha_of
    from interp.models import load_model, model_fingerprint

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="results/science/units")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)

    model = load_model(args.model, verbose=False)
    old, new = old_fingerprint(model), model_fingerprint(model)
    print(f"old-algorithm fingerprint of the loaded model: {old}; current: {new}", file=sys.stderr)
    records = {path: json.loads(path.read_text()) for path in sorted(Path(args.root).glob("*/*.json"))}
    stale = {path: r for path, r in records.items() if r["key"]["model"]["fingerprint"] not in (new,)}
    foreign = {r["key"]["model"]["fingerprint"] for r in stale.values()} - {old}
    if foreign:
        print(f"refusing: units of other models ({sorted(foreign)}) - the loaded model is not theirs", file=sys.stderr)
        return 2
    # check 2: every unit present under both keys has identical per-query outcomes
    by_new_key = {sha_of(r["key"]): r for r in records.values() if r["key"]["model"]["fingerprint"] == new}
    checked = 0
    for path, r in stale.items():
        key = {**r["key"], "model": {**r["key"]["model"], "fingerprint": new}}
        twin = by_new_key.get(sha_of(_jsonable(key)))
        if twin is None or "eval" not in r["result"]:
            continue
        for setting, ev in r["result"]["eval"].items():
            if ev.get("correct") != twin["result"]["eval"][setting].get("correct"):
                print(f"refusing: {path} and its recomputation differ on {setting}", file=sys.stderr)
                return 2
        if "theta" in r["result"]:
            diff = float(np.abs(np.asarray(r["result"]["theta"]) - np.asarray(twin["result"]["theta"])).max())
            print(f"check: {r['key']['task']} {r['key']['unit']}: same outcomes, max |Δθ| {diff:.2e}", file=sys.stderr)
        checked += 1
    moved = 0
    for path, r in stale.items():
        key = _jsonable({**r["key"], "model": {**r["key"]["model"], "fingerprint": new}})
        target = path.parent / f"{sha_of(key)}.json"
        if target.exists():
            if not args.dry_run:
                path.unlink()  # the recomputed unit under the new key wins
            continue
        record = {**r, "key": key, "migrated_from_fingerprint": old}
        if not args.dry_run:
            target.write_text(json.dumps(record))
            path.unlink()
        moved += 1
    print(json.dumps({"old": old, "new": new, "units": len(records), "stale": len(stale), "checked_twins": checked,
                      "migrated": moved, "dry_run": args.dry_run}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
