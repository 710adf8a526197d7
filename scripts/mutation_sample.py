"""Print a seeded random sample of mutmut mutant names, N per mutated module (for budgeted mutation runs).

    mutmut run --max-children 1 some.name          # once, to generate the mutants and the test map
    python scripts/mutation_sample.py 20 | xargs mutmut run --max-children 1
    mutmut results --all true                      # killed / survived / timeout per mutant

Reads ``mutmut results --all true`` (run here) and samples from every mutant it lists.
"""

from __future__ import annotations

import random
import subprocess
import sys


def main(per_module: int, seed: int = 0) -> None:
    listing = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    names = [line.split(":")[0].strip() for line in listing.splitlines() if "__mutmut_" in line]
    by_module: dict[str, list[str]] = {}
    for name in names:
        by_module.setdefault(name.split(".")[1], []).append(name)
    rng = random.Random(seed)
    for _, group in sorted(by_module.items()):
        for name in sorted(rng.sample(group, min(per_module, len(group)))):
            print(name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, int(sys.argv[2]) if len(sys.argv) > 2 else 0)
