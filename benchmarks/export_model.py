"""Write the generated platform's stage-1 purchase MIP as an MPS file, to study it outside procure.

    python -m benchmarks.export_model --workloads 20 --seed 0 --out /tmp/m20.mps

The model is the one ``benchmarks/scale.py`` solves (``benchmarks/large_instance.py``'s generator,
populations merged, objective capex). HiGHS writes it while reading it (its ``write_model_file``
option) and stops at the root (node limit 0). Any MIP solver reads the file; docs/optimization.md
quotes HiGHS's bounds on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ortools.math_opt.python import mathopt

from benchmarks.large_instance import generate
from optimizer.loaders import load_catalog, resolve_scenario
from optimizer.model.build import build_model, limits_of
from optimizer.model.pipeline import settings_of
from optimizer.model.solve import _params
from optimizer.schema.scenario import Scenario
from optimizer.sizing.candidates import build_candidates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="MPS file to write")
    args = ap.parse_args()
    rs = resolve_scenario(Scenario.model_validate(generate(args.workloads, args.seed)), Path("generated.yaml"),
                          load_catalog())
    mm = build_model(rs, build_candidates(rs), limits_of(rs), "capex")
    params = _params(settings_of(rs, time_limit_s=10.0, gap=1e-3), 10.0, mathopt.SolverType.HIGHS, node_limit=0)
    params.highs.bool_options["write_model_to_file"] = True
    params.highs.string_options["write_model_file"] = str(args.out)
    mathopt.solve(mm.model, mathopt.SolverType.HIGHS, params=params)
    print(f"{args.out}: {mm.model.get_num_variables()} variables, {len(mm.cands.inference)} inference columns")


if __name__ == "__main__":
    main()
