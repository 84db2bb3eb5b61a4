"""Our planner beside lowtime 0.3.0 and 0.2.0 (the Perseus authors' planner) on one DAG.

For each case (a shipped profile, 1F1B, S stages x M microbatches, one GPU per stage,
blocking power P_blk per GPU, time unit tau) this times

  * ours: perseus.plan() (the C++ planner through the Python bindings; best of
    --ours-repeats), with the default convex cost model and with cost_model="exponential",
    and `perseus plan --json` (the CLI, process start included);
  * lowtime 0.3.0 (max flow in Rust) and lowtime 0.2.0 (pure Python, networkx max flow),
    each in its own virtual environment (bench/lowtime_setup.sh) through
    bench/lowtime_run.py, in a fresh process per run, on literally the same input: the
    profile CSV's rows and our planner's DAG (problem()), written to one JSON file.
    Best of --repeats runs, or a single run when the first one takes longer than
    --single-above seconds; a run is stopped after --timeout seconds.

and prints the wall times, their ratios, the number of frontier points each tool
produced and figures that show both solved the same problem (see "Reading the
figures" in --help).

Setup (once; creates .venv-lowtime-0.3 and .venv-lowtime-0.2 from /usr/bin/python3):

    bench/lowtime_setup.sh          # or: bench/lowtime_compare.py --setup

Run (from the repository root, with the built Python package):

    PYTHONPATH=build/python .venv/bin/python bench/lowtime_compare.py
        [--profiles gpt3 bloom] [--microbatches 8 32] [--unit-times 0.001 0.0001]
        [--json] [--save results.json]     (one command line)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent

PROFILES = {
    "gpt3": REPO / "data/profiles/gpt3-175b+a100_sxm_bf16.csv",
    "bloom": REPO / "data/profiles/bloom+a100_sxm_bf16.csv",
}

READING = """\
Reading the figures. Times: "plan" is the whole call (ours: parse the profile, fit,
build the DAG, solve; lowtime: Pareto-filter and fit the 2S operation specs, build the
networkx DAG, run PhillipsDessouky to the end), "solve" the frontier solve alone (ours:
solve_seconds; lowtime: PhillipsDessouky.run()). Imports and process start are not
counted for lowtime. Ratios are of "plan" times against ours (convex, the default).

The cost models differ: lowtime fits a*exp(b*d)+c to each computation's Pareto options
(Pareto in measured energy, duration d rounded *down* to the unit) and reports model
energies at model times, starting from every computation's slowest Pareto option; ours
(convex by default, or the same exponential family with cost_model="exponential")
rounds durations *up*, keeps the options that are Pareto in effective energy
(e - P_blk t) and reports realized figures (the plan's measured times and energies,
critical path recomputed). So lowtime's fastest model time is below the all-max
iteration time (rounding down is optimistic) and its slowest is later than ours (it
keeps slow frequencies that save measured but not effective energy). The realized
columns evaluate lowtime's own plans (its frequencies) with the measured profile, the
same way as ours: T = longest path, E = sum(e) + P_blk (S T - sum(t))."""


def load_profile(path: Path) -> list[dict[str, str]]:
    """The profile CSV's rows, as strings (what lowtime_run.py parses)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(row) for row in csv.DictReader(f)]


def measurements(rows: Sequence[dict[str, str]]) -> dict[tuple[int, str, int], tuple[float, float]]:
    """(stage, instruction, frequency) -> (time s, energy J)."""
    return {
        (int(r["stage"]), r["instruction"], int(r["frequency"])): (
            float(r["time"]),
            float(r["energy"]),
        )
        for r in rows
    }


def realized(
    nodes: Sequence[dict[str, Any]],
    knobs: Sequence[int],
    measured: dict[tuple[int, str, int], tuple[float, float]],
    num_gpus: int,
    p_blk: float,
) -> tuple[float, float]:
    """(time, energy) of a plan given as one frequency per node, from the measurements."""
    t = [measured[(int(n["stage"]), str(n["kind"]), int(k))][0] for n, k in zip(nodes, knobs)]
    e = [measured[(int(n["stage"]), str(n["kind"]), int(k))][1] for n, k in zip(nodes, knobs)]
    indegree = [0] * len(nodes)
    for n in nodes:
        for j in n["successors"]:
            indegree[int(j)] += 1
    finish = [0.0] * len(nodes)
    start = [0.0] * len(nodes)
    ready = [i for i, d in enumerate(indegree) if d == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        finish[i] = start[i] + t[i]
        for j in nodes[i]["successors"]:
            j = int(j)
            start[j] = max(start[j], finish[i])
            indegree[j] -= 1
            if indegree[j] == 0:
                ready.append(j)
    if seen != len(nodes):
        raise ValueError("the DAG has a cycle")
    total = max(finish)
    return total, sum(e) + p_blk * (num_gpus * total - sum(t))


def best_of(fn: Any, repeats: int) -> tuple[float, list[float], Any]:
    """Runs fn() `repeats` times; (best wall, all walls, last result)."""
    walls: list[float] = []
    result: Any = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - t0)
    return min(walls), walls, result


def run_ours(args: argparse.Namespace, profile: Path, m: int, unit: float) -> dict[str, Any]:
    import perseus

    out: dict[str, Any] = {}
    frontier: Any = None
    for model in ("convex", "exponential"):
        solves: list[float] = []

        def plan(model: str = model) -> Any:
            f = perseus.plan(
                str(profile),
                stages=args.stages,
                microbatches=m,
                schedule="1f1b",
                blocking_power_w=args.blocking_power,
                unit_time=unit,
                cost_model=model,
            )
            solves.append(f.solve_seconds)
            return f

        best, walls, f = best_of(plan, args.ours_repeats)
        pts = f.points
        t_min, t_star = pts[f.t_min_index], pts[f.t_star_index]
        all_max_t, all_max_e = f.all_max
        k = f.index_for_deadline(all_max_t + 1e-9)
        out[model] = {
            "plan_s": best,
            "plan_s_all": walls,
            "solve_s": min(solves),
            "points": len(f),
            "range_s": [min(p.time_s for p in pts), max(p.time_s for p in pts)],
            "model_range_s": [min(p.model_time_s for p in pts), max(p.model_time_s for p in pts)],
            "all_max": {"time_s": all_max_t, "energy_j": all_max_e},
            "t_min": point_dict(t_min),
            "t_star": point_dict(t_star),
            "energy_within_all_max_j": pts[k].energy_j if k is not None else None,
            "notes": list(f.notes),
        }
        if model == "convex":
            frontier = f
    out["problem"] = frontier.problem()
    binary = Path(args.perseus_bin)
    if binary.exists():
        cmd = [
            str(binary), "plan", "--profile", str(profile), "--stages", str(args.stages),
            "--microbatches", str(m), "--blocking-power", str(args.blocking_power),
            "--unit-time", str(unit), "--json",
        ]  # fmt: skip

        def cli() -> Any:
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            return json.loads(done.stdout)

        best, walls, report = best_of(cli, args.ours_repeats)
        out["cli"] = {"plan_s": best, "plan_s_all": walls, "points": report["frontier_points"]}
    return out


def point_dict(p: Any) -> dict[str, float]:
    return {
        "time_s": p.time_s,
        "energy_j": p.energy_j,
        "model_time_s": p.model_time_s,
        "model_energy_j": p.model_energy_j,
    }


def run_lowtime(
    args: argparse.Namespace, version: str, problem_path: Path, label: str
) -> dict[str, Any]:
    python = REPO / f".venv-lowtime-{version}" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run bench/lowtime_setup.sh first")
    cmd = [str(python), "-W", "ignore", str(REPO / "bench" / "lowtime_run.py"), str(problem_path)]
    runs: list[dict[str, Any]] = []
    walls: list[float] = []
    while len(runs) < args.repeats:
        print(f"  {label}: lowtime {version} run {len(runs) + 1} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            done = subprocess.run(
                cmd,
                check=False,
                stdout=subprocess.PIPE,
                stderr=None if args.progress else subprocess.PIPE,
                text=True,
                timeout=args.timeout,
            )
        except subprocess.TimeoutExpired:
            wall = time.perf_counter() - t0
            print(f"  {label}: lowtime {version} stopped after {wall:.0f} s", file=sys.stderr)
            if runs:
                break
            return {"timeout_s": args.timeout, "stopped_after_s": wall}
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"lowtime {version} failed ({done.returncode}):\n{done.stderr}")
        result = json.loads(done.stdout)
        runs.append(result)
        walls.append(wall)
        print(
            f"  {label}: lowtime {version} plan {result['seconds']['total']:.2f} s"
            f" (solve {result['seconds']['solve']:.2f} s, process {wall:.2f} s)",
            file=sys.stderr,
            flush=True,
        )
        if result["seconds"]["total"] > args.single_above:
            break
    best = min(runs, key=lambda r: float(r["seconds"]["total"]))
    best["runs"] = len(runs)
    best["plan_s_all"] = [r["seconds"]["total"] for r in runs]
    best["solve_s_all"] = [r["seconds"]["solve"] for r in runs]
    best["process_s_all"] = walls
    same = all(r["frontier"] == runs[0]["frontier"] for r in runs)
    best["repeat_frontiers_identical"] = same
    return best


def summarize_lowtime(
    result: dict[str, Any],
    nodes: Sequence[dict[str, Any]],
    measured: dict[tuple[int, str, int], tuple[float, float]],
    num_gpus: int,
    p_blk: float,
    all_max_t: float,
) -> dict[str, Any]:
    if "frontier" not in result:
        return result
    frontier = result["frontier"]
    fastest = min(frontier, key=lambda p: p[1])
    lowest = min(frontier, key=lambda p: p[2])
    within = [p[2] for p in frontier if p[1] <= all_max_t + 1e-9]
    knobs = result["knobs"]
    fast_t, fast_e = realized(nodes, knobs["last"], measured, num_gpus, p_blk)
    low_t, low_e = realized(nodes, knobs["lowest_energy"], measured, num_gpus, p_blk)
    init_t, init_e = realized(nodes, knobs["initial"], measured, num_gpus, p_blk)
    return {
        "versions": result["versions"],
        "runs": result["runs"],
        "plan_s": result["seconds"]["total"],
        "solve_s": result["seconds"]["solve"],
        "seconds": result["seconds"],
        "plan_s_all": result["plan_s_all"],
        "solve_s_all": result["solve_s_all"],
        "process_s_all": result["process_s_all"],
        "repeat_frontiers_identical": result["repeat_frontiers_identical"],
        "dag_matches_lowtime_1f1b": result["dag_matches_lowtime_1f1b"],
        "dag_edges": result["dag_edges"],
        "points": len(frontier),
        "model_range_s": [fastest[1], max(p[1] for p in frontier)],
        "t_min": {"model_time_s": fastest[1], "model_energy_j": fastest[2]},
        "t_min_plan_realized": {"time_s": fast_t, "energy_j": fast_e},
        "lowest": {"model_time_s": lowest[1], "model_energy_j": lowest[2]},
        "lowest_plan_realized": {"time_s": low_t, "energy_j": low_e},
        "slowest_plan_realized": {"time_s": init_t, "energy_j": init_e},
        "model_energy_within_all_max_j": min(within) if within else None,
        "specs_with_noise_factor": sum(1 for s in result["specs"] if s["noise_factor_used"]),
        "frontier": frontier,
    }


def run_case(args: argparse.Namespace, name: str, m: int, unit: float, tmp: Path) -> dict[str, Any]:
    profile = PROFILES[name]
    label = f"{name} {args.stages}x{m} tau={unit * 1e3:g} ms"
    print(f"{label}: ours ...", file=sys.stderr, flush=True)
    ours = run_ours(args, profile, m, unit)
    problem = ours.pop("problem")
    nodes = [
        {k: n[k] for k in ("stage", "kind", "microbatch", "successors")} for n in problem["nodes"]
    ]
    rows = load_profile(profile)
    problem_path = tmp / f"{name}-{args.stages}x{m}-{unit:g}.json"
    with open(problem_path, "w", encoding="utf-8") as f:
        json.dump(
            {
                "unit_time": unit,
                "blocking_power_w": args.blocking_power,
                "num_stages": args.stages,
                "search_strategy": "best",
                "noise_factor": 0.95,
                "profile": rows,
                "nodes": nodes,
            },
            f,
        )
    measured = measurements(rows)
    num_gpus = int(problem["num_gpus"])
    all_max_t = float(ours["convex"]["all_max"]["time_s"])
    case: dict[str, Any] = {
        "profile": name,
        "stages": args.stages,
        "microbatches": m,
        "unit_time_s": unit,
        "blocking_power_w": args.blocking_power,
        "computations": len(nodes),
        "ours": ours,
        "lowtime": {},
    }
    saved = args.reuse.get((name, args.stages, m, unit), [])
    for version in args.versions:
        if (m, unit, version) in args.skip or (name, m, unit, version) in args.skip:
            case["lowtime"][version] = {"skipped": True}
            continue
        earlier = [
            c["lowtime"][version] for c in saved if "points" in c["lowtime"].get(version, {})
        ]
        stopped = [
            c["lowtime"][version] for c in saved if "timeout_s" in c["lowtime"].get(version, {})
        ]
        if earlier or stopped:
            print(f"  {label}: lowtime {version} from --reuse-lowtime", file=sys.stderr)
            case["lowtime"][version] = merge_runs(earlier) if earlier else dict(stopped[0])
            case["lowtime"][version]["reused"] = True
            continue
        result = run_lowtime(args, version, problem_path, label)
        case["lowtime"][version] = summarize_lowtime(
            result, nodes, measured, num_gpus, args.blocking_power, all_max_t
        )
    compare_versions(case, saved)
    return case


def compare_versions(case: dict[str, Any], saved: Sequence[dict[str, Any]]) -> None:
    """Whether lowtime 0.3.0 and 0.2.0 gave the same frontier: the same points (equal
    quantised times, energies equal up to rounding: floating-point sums in another order).
    From the frontiers when both are at hand, else from a saved comparison (lowtime is
    deterministic: repeated runs give the same frontier), else from the summary figures."""
    a, b = case["lowtime"].get("0.3", {}), case["lowtime"].get("0.2", {})
    if "points" not in a or "points" not in b:
        return
    if "frontier" in a and "frontier" in b:
        fa, fb = a["frontier"], b["frontier"]
        same_times = [x[0] for x in fa] == [y[0] for y in fb]
        diff = max((abs(x[2] - y[2]) for x, y in zip(fa, fb)), default=0.0) if same_times else None
        case["lowtime_versions_compared"] = "frontiers"
    else:
        diffs = [c.get("lowtime_versions_max_energy_diff_j") for c in saved]
        known = [float(d) for d in diffs if d is not None]
        if known:
            diff = max(known)
            case["lowtime_versions_compared"] = "frontiers (saved comparison)"
        else:
            figures = ("points", "model_range_s", "t_min", "lowest", "t_min_plan_realized",
                       "lowest_plan_realized", "slowest_plan_realized")  # fmt: skip
            diff = 0.0 if all(a[k] == b[k] for k in figures) else None
            case["lowtime_versions_compared"] = "summary figures"
    case["lowtime_versions_frontiers_identical"] = diff is not None and diff <= 1e-6
    case["lowtime_versions_max_energy_diff_j"] = diff


def merge_runs(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One lowtime result from the results of several invocations (--reuse-lowtime): the
    fastest, with every run's times; frontiers compared by their summary figures."""
    best = dict(min(results, key=lambda r: float(r["plan_s"])))
    for key in ("plan_s_all", "solve_s_all", "process_s_all"):
        best[key] = [x for r in results for x in r[key]]
    best["runs"] = sum(int(r["runs"]) for r in results)
    figures = ("points", "model_range_s", "t_min", "lowest", "t_min_plan_realized")
    best["repeat_frontiers_identical"] = all(
        r["repeat_frontiers_identical"] and all(r[k] == results[0][k] for k in figures)
        for r in results
    )
    best["reused"] = True
    return best


def fmt_s(x: Optional[float]) -> str:
    if x is None:
        return "n/a"
    if x < 1:
        return f"{x * 1e3:.1f} ms"
    return f"{x:.2f} s"


def lowtime_cell(r: dict[str, Any]) -> str:
    if r.get("skipped"):
        return "not run"
    if "timeout_s" in r:
        return f"stopped at {r['timeout_s']:.0f} s"
    runs = f"{r['runs']} run{'s' if r['runs'] > 1 else ''}"
    return f"{fmt_s(r['plan_s'])} ({fmt_s(r['solve_s'])}; {runs})"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    if a is None or b is None or b <= 0:
        return "n/a"
    return f"{a / b:,.0f}x" if a / b >= 10 else f"{a / b:.2f}x"


def plan_s(r: dict[str, Any]) -> Optional[float]:
    v = r.get("plan_s")
    return float(v) if v is not None else None


def print_tables(results: dict[str, Any]) -> None:
    env = results["machine"]
    if results.get("note"):
        print(results["note"])
    print(
        f"Machine: {env['cpus']} CPUs, {env['platform']}, Python {env['python']}, "
        f"load average {env['loadavg_start'][0]:.2f} at start, {env['loadavg_end'][0]:.2f} at end."
    )
    if "perseus" in results:
        print(f"Ours: perseus {results['perseus']['version']} from {results['perseus']['module']}.")
    print(
        f"Ours: best of {results['options']['ours_repeats']} calls. lowtime: best of "
        f"{results['options']['repeats']} fresh processes (one when a run takes over "
        f"{results['options']['single_above']:g} s), stopped after "
        f"{results['options']['timeout']:g} s."
    )
    print()
    print("### Wall time: plan (solve)\n")
    print(
        "| case | ours plan() convex | ours plan() exponential | ours CLI --json | lowtime 0.3.0 | "
        "lowtime 0.2.0 | 0.3 / ours | 0.2 / ours | 0.2 / 0.3 | 0.3 / ours, solve only |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in results["cases"]:
        o = c["ours"]
        lt3 = c["lowtime"].get("0.3", {"skipped": True})
        lt2 = c["lowtime"].get("0.2", {"skipped": True})
        print(
            f"| {c['profile']} {c['stages']}x{c['microbatches']}, {c['unit_time_s'] * 1e3:g} ms "
            f"| {fmt_s(o['convex']['plan_s'])} ({fmt_s(o['convex']['solve_s'])}) "
            f"| {fmt_s(o['exponential']['plan_s'])} ({fmt_s(o['exponential']['solve_s'])}) "
            f"| {fmt_s(o['cli']['plan_s']) if 'cli' in o else 'n/a'} "
            f"| {lowtime_cell(lt3)} | {lowtime_cell(lt2)} "
            f"| {ratio(plan_s(lt3), o['convex']['plan_s'])} "
            f"| {ratio(plan_s(lt2), o['convex']['plan_s'])} "
            f"| {ratio(plan_s(lt2), plan_s(lt3))} "
            f"| {ratio(lt3.get('solve_s'), o['convex']['solve_s'])} |"
        )
    print()
    print("### Frontiers: points and figures\n")
    print(
        "| case | tool | points | model time range (s) | fastest: model t, E "
        "| fastest plan realized t, E | lowest-energy: model t, E | its plan realized t, E "
        "| E within the all-max time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for c in results["cases"]:
        case = f"{c['profile']} {c['stages']}x{c['microbatches']}, {c['unit_time_s'] * 1e3:g} ms"
        o = c["ours"]
        am = o["convex"]["all_max"]
        for model in ("convex", "exponential"):
            r = o[model]
            tm, ts = r["t_min"], r["t_star"]
            within = r["energy_within_all_max_j"]
            within_cell = f"{within:.1f} J" if within is not None else "n/a"
            print(
                f"| {case} | ours {model} | {r['points']} "
                f"| {r['model_range_s'][0]:.4f}–{r['model_range_s'][1]:.4f} "
                f"| {tm['model_time_s']:.4f} s, {tm['model_energy_j']:.1f} J "
                f"| {tm['time_s']:.4f} s, {tm['energy_j']:.1f} J "
                f"| {ts['model_time_s']:.4f} s, {ts['model_energy_j']:.1f} J "
                f"| {ts['time_s']:.4f} s, {ts['energy_j']:.1f} J "
                f"| {within_cell} (realized; all-max {am['time_s']:.4f} s, "
                f"{am['energy_j']:.1f} J) |"
            )
        for version in ("0.3", "0.2"):
            r = c["lowtime"].get(version)
            if r is None or "points" not in r:
                continue
            tm, fr = r["t_min"], r["t_min_plan_realized"]
            lo, lr = r["lowest"], r["lowest_plan_realized"]
            within = r["model_energy_within_all_max_j"]
            print(
                f"| {case} | lowtime {r['versions']['lowtime']} | {r['points']} "
                f"| {r['model_range_s'][0]:.4f}–{r['model_range_s'][1]:.4f} "
                f"| {tm['model_time_s']:.4f} s, {tm['model_energy_j']:.1f} J "
                f"| {fr['time_s']:.4f} s, {fr['energy_j']:.1f} J "
                f"| {lo['model_time_s']:.4f} s, {lo['model_energy_j']:.1f} J "
                f"| {lr['time_s']:.4f} s, {lr['energy_j']:.1f} J "
                f"| {f'{within:.1f} J (model)' if within is not None else 'n/a'} |"
            )
        same = c.get("lowtime_versions_frontiers_identical")
        dag = [r.get("dag_matches_lowtime_1f1b") for r in c["lowtime"].values() if "points" in r]
        notes = []
        if same is not None:
            diff = c.get("lowtime_versions_max_energy_diff_j")
            how = c.get("lowtime_versions_compared", "frontiers")
            if same and how == "summary figures":
                notes.append("lowtime 0.3.0 and 0.2.0: the same points, ranges, fastest and "
                             "lowest-energy points and realized plans")  # fmt: skip
            elif same:
                notes.append(f"lowtime 0.3.0 and 0.2.0 give the same frontier (equal times, "
                             f"energies within {diff:.1e} J)")  # fmt: skip
            else:
                notes.append(f"lowtime 0.3.0 and 0.2.0 frontiers DIFFER ({how})")
        if dag:
            notes.append(
                f"our DAG = lowtime's Synchronous1F1B DAG ({c['computations']} computations): "
                f"{'yes' if all(dag) else 'NO'}"
            )
        if notes:
            print(f"| {case} | | | {'; '.join(notes)} | | | | | |")
    print()
    print(READING)


def parse_skip(values: Sequence[str]) -> set[tuple[Any, ...]]:
    """[PROFILE:]M:UNIT:VERSION -> (M, unit, version) or (profile, M, unit, version)."""
    out: set[tuple[Any, ...]] = set()
    for v in values:
        parts = v.split(":")
        if len(parts) == 3:
            out.add((int(parts[0]), float(parts[1]), parts[2]))
        elif len(parts) == 4:
            out.add((parts[0], int(parts[1]), float(parts[2]), parts[3]))
        else:
            raise SystemExit(f"--skip {v}: expected [PROFILE:]M:UNIT:VERSION")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog=READING,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--setup", action="store_true", help="run bench/lowtime_setup.sh first")
    parser.add_argument("--profiles", nargs="+", choices=sorted(PROFILES), default=["gpt3"])
    parser.add_argument("--stages", type=int, default=8)
    parser.add_argument("--microbatches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--unit-times", type=float, nargs="+", default=[0.001])
    parser.add_argument("--blocking-power", type=float, default=83.64, help="W per GPU")
    parser.add_argument("--versions", nargs="+", choices=["0.3", "0.2"], default=["0.3", "0.2"])
    parser.add_argument(
        "--skip", nargs="*", default=[], metavar="[PROFILE:]M:UNIT:VERSION",
        help="lowtime runs not to start, e.g. 32:0.0001:0.2 or bloom:32:0.001:0.2",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="lowtime runs per case (best of)")
    parser.add_argument("--single-above", type=float, default=60.0,
                        help="no repeat after a lowtime run longer than this (s)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=900.0, help="stop a lowtime run (s)")
    parser.add_argument("--ours-repeats", type=int, default=5)
    parser.add_argument("--perseus-bin", default=str(REPO / "build/bin/perseus"))
    parser.add_argument("--progress", action="store_true", help="show lowtime's progress")
    parser.add_argument("--note", default="", help="a line to print and save with the results")
    parser.add_argument("--json", action="store_true", help="print one JSON object, no tables")
    parser.add_argument("--save", metavar="PATH", help="also write the JSON object to PATH")
    parser.add_argument("--load", metavar="PATH", help="print the tables of a saved JSON object")
    parser.add_argument(
        "--reuse-lowtime", nargs="+", default=[], metavar="PATH",
        help="take lowtime's results from these saved JSON objects (--save) where they have the "
        "case instead of running it again (several: the best run, all runs' times kept)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    if args.load:
        with open(args.load, encoding="utf-8") as f:
            print_tables(json.load(f))
        return 0
    if args.setup:
        subprocess.run([str(REPO / "bench" / "lowtime_setup.sh")], check=True)
    args.skip = parse_skip(args.skip)
    args.reuse = {}
    for path in args.reuse_lowtime:
        with open(path, encoding="utf-8") as f:
            for c in json.load(f)["cases"]:
                key = (c["profile"], c["stages"], c["microbatches"], c["unit_time_s"])
                args.reuse.setdefault(key, []).append(c)
    try:
        import perseus
    except ImportError:
        sys.path.insert(0, str(REPO / "build" / "python"))
        import perseus

    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "loadavg_start": list(os.getloadavg()),
        },
        "perseus": {"module": str(Path(perseus.__file__).parent), "version": perseus.__version__,
                    "binary": args.perseus_bin},  # fmt: skip
        "options": {
            "repeats": args.repeats,
            "single_above": args.single_above,
            "timeout": args.timeout,
            "ours_repeats": args.ours_repeats,
        },
        "note": args.note,
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="lowtime-compare-") as tmp:
        for name in args.profiles:
            for m in args.microbatches:
                for unit in args.unit_times:
                    results["cases"].append(run_case(args, name, m, unit, Path(tmp)))
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    if args.save:
        with open(args.save, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
