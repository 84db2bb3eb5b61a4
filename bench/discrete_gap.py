#!/usr/bin/env python3
"""The planner's realized saving at a deadline beside the exact discrete optimum (a MILP).

For each case (profile, schedule, microbatches) and deadline D = factor x the all-max time:
the plan the user gets for D (`Frontier.plan_for_deadline`: the frontier's point improved by the
discrete local search, as show-plan, the coordinator and the emulator give it), the frontier's
point alone (`Frontier.index_for_deadline`) for comparison, and `perseus.milp.optimal_plan`
(HiGHS, time-limited, started from the planner's plan: then its best plan, never worse than
ours, and its proven lower bound; the optimum lies between). Savings are against all-max. One
GPU per stage, the shipped profiles unscaled, blocking power 83.64 W.

    PYTHONPATH=build/python .venv/bin/python bench/discrete_gap.py --microbatches 12,24 \\
        --time-limit 60 [--json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any, Dict, List

REPO = pathlib.Path(__file__).resolve().parents[1]
try:
    import perseus
except ImportError:  # a build tree
    sys.path.insert(0, str(REPO / "build" / "python"))
    import perseus
from perseus.milp import optimal_plan

PROFILES = {"gpt3": REPO / "data" / "profiles" / "gpt3-175b+a100_sxm_bf16.csv",
            "bloom": REPO / "data" / "profiles" / "bloom+a100_sxm_bf16.csv"}


def run_case(profile: str, schedule: str, microbatches: int, factors: List[float],
             unit_time: float, time_limit_s: float) -> List[Dict[str, Any]]:
    start = time.monotonic()
    f = perseus.plan(str(PROFILES[profile]), stages=8, microbatches=microbatches,
                     schedule=schedule, blocking_power_w=83.64, unit_time=unit_time)
    plan_s = time.monotonic() - start
    problem = f.problem()
    t_max, e_max = f.all_max
    rows = []
    for factor in factors:
        deadline = t_max * factor
        k = f.index_for_deadline(deadline)
        assert k is not None
        start = time.monotonic()
        deadline_plan = f.plan_for_deadline(deadline)
        search_s = time.monotonic() - start
        assert deadline_plan is not None and deadline_plan["time_s"] <= deadline * (1 + 1e-9)
        ours = deadline_plan["energy_j"]
        milp = optimal_plan(problem, deadline, time_limit_s=time_limit_s,
                            start=deadline_plan["options"])
        row = {"profile": profile, "schedule": schedule, "microbatches": microbatches,
               "factor": factor, "unit_time": unit_time, "plan_s": round(plan_s, 3),
               "search_s": round(search_s, 3), "search_moves": deadline_plan["moves"],
               "frontier_points": len(f), "saving_pct": 100 * (1 - ours / e_max),
               "frontier_point_saving_pct": 100 * (1 - f.points[k].energy_j / e_max),
               "milp_status": milp.status, "milp_s": round(milp.seconds, 1),
               "milp_saving_pct": (None if milp.energy_j is None
                                   else 100 * (1 - milp.energy_j / e_max)),
               "milp_bound_saving_pct": 100 * (1 - milp.bound_j / e_max)}
        if milp.options is not None:  # the oracle's plan, checked by the planner's evaluator
            t, e = f.evaluate(milp.options)
            assert t <= deadline * (1 + 1e-9), (t, deadline)
            assert abs(e - milp.energy_j) <= 1e-6 * e, (e, milp.energy_j)
        # The gap to the optimum is at most the gap to the bound.
        row["gap_to_bound_pp"] = row["milp_bound_saving_pct"] - row["saving_pct"]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="gpt3,bloom")
    parser.add_argument("--schedules", default="1f1b,zb-h1")
    parser.add_argument("--microbatches", default="12", help="comma-separated")
    parser.add_argument("--factors", default="1.00,1.02,1.05,1.10")
    parser.add_argument("--unit-time", type=float, default=0.0,
                        help="the solver's quantum (default 0: automatic, as perseus plan)")
    parser.add_argument("--time-limit", type=float, default=60.0,
                        help="seconds per MILP (then its best plan and bound are reported)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    factors = [float(x) for x in args.factors.split(",")]
    if not args.json:
        print(f"{'case':<22} {'D':>5} {'point':>8} {'ours':>8} {'MILP':>8} {'bound':>8} "
              f"{'gap':>6} {'gap<=':>6} status")
    for profile in args.profiles.split(","):
        for schedule in args.schedules.split(","):
            for m in (int(x) for x in args.microbatches.split(",")):
                for row in run_case(profile, schedule, m, factors, args.unit_time,
                                    args.time_limit):
                    if args.json:
                        print(json.dumps(row), flush=True)
                        continue
                    milp = row["milp_saving_pct"]
                    gap = "-" if milp is None else f"{milp - row['saving_pct']:.3f}"
                    print(f"{profile + ' ' + schedule + ' M=' + str(m):<22} "
                          f"{row['factor']:>5.2f} {row['frontier_point_saving_pct']:>7.3f}% "
                          f"{row['saving_pct']:>7.3f}% "
                          f"{'-' if milp is None else f'{milp:.3f}%':>8} "
                          f"{row['milp_bound_saving_pct']:>7.3f}% {gap:>6} "
                          f"{row['gap_to_bound_pp']:>6.3f} {row['milp_status']} "
                          f"({row['milp_s']} s; search {row['search_s']} s)", flush=True)


if __name__ == "__main__":
    main()
