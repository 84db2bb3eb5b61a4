"""The exact discrete optimum of a planning problem at a deadline, as a MILP solved by HiGHS.

The planner's frontier solver optimises a convex relaxation on a time grid and maps it back to
measured frequencies; this module is the oracle it is measured against (tests, bench/): for a
deadline D, the plan of least *realized* energy among every choice of one measured option
(frequency) per computation whose longest path is <= D.

Formulation (on `Frontier.problem()`): binary x[i,k] (computation i runs option k, one per i),
start times s[i] >= 0, iteration time T <= D;

    s[j] >= s[i] + sum_k t[i,k] x[i,k]        for every dependency i -> j
    s[i] + sum_k t[i,k] x[i,k] <= T           for every i
    minimise  sum_{i,k} (e[i,k] - P t[i,k]) x[i,k] + P * S * T

which is exactly the realized energy sum(e) + P (S T - sum(t)) of the chosen plan at its own
longest path T (P: blocking power per DAG GPU, S: DAG GPUs). The options are the problem's
Pareto options (fastest first); an option off that set is slower and costs more effective energy
than one on it, so leaving it out loses nothing.

Needs `highspy` (pinned in python/requirements-dev.txt); imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["MilpResult", "optimal_plan"]


@dataclass
class MilpResult:
    """The MILP's answer at one deadline."""

    status: str               # HiGHS's model status, e.g. "Optimal", "Time limit reached"
    energy_j: Optional[float]  # the best plan's realized energy (None: no plan found)
    bound_j: float             # HiGHS's lower bound on the optimum (= energy_j when optimal)
    time_s: Optional[float]    # its iteration time (longest path)
    options: Optional[List[int]]  # one option index per computation
    gap: float                 # HiGHS's relative MIP gap
    seconds: float             # solve time

    @property
    def optimal(self) -> bool:
        return self.status == "Optimal"


def optimal_plan(problem: Dict[str, Any], deadline_s: float, *,
                 time_limit_s: Optional[float] = None, mip_rel_gap: float = 1e-6,
                 threads: int = 1, start: Optional[Sequence[int]] = None) -> MilpResult:
    """The least realized energy plan with iteration time <= deadline_s (see the module).

    `start`: a plan (one option index per node) HiGHS starts from as its first incumbent, e.g.
    the planner's; the answer is then never worse than it. A start that misses the deadline is
    rejected with ValueError.
    """
    try:
        import highspy
        import numpy as np
    except ImportError as error:  # pragma: no cover (the venv has both)
        raise ImportError("perseus.milp needs highspy and numpy (pip install highspy)") from error
    nodes = problem["nodes"]
    P = float(problem["blocking_power_w"])
    S = int(problem["num_gpus"])
    n = len(nodes)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", threads)
    h.setOptionValue("mip_rel_gap", mip_rel_gap)
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    inf = highspy.kHighsInf
    # Columns: x[i,k] for every (i, k), then s[0..n), then T.
    x_index: List[List[int]] = []
    costs: List[float] = []
    lower: List[float] = []
    upper: List[float] = []
    for node in nodes:
        row = []
        for option in node["options"]:
            row.append(len(costs))
            costs.append(option["energy_j"] - P * option["time_s"])
            lower.append(0.0)
            upper.append(1.0)
        x_index.append(row)
    s_base = len(costs)
    for _ in range(n):
        costs.append(0.0)
        lower.append(0.0)
        upper.append(float(deadline_s))
    t_col = len(costs)
    costs.append(P * S)
    lower.append(0.0)
    upper.append(float(deadline_s))
    h.addVars(len(costs), np.array(lower), np.array(upper))
    h.changeColsCost(len(costs), np.arange(len(costs), dtype=np.int32), np.array(costs))
    binaries = [c for row in x_index for c in row]
    h.changeColsIntegrality(len(binaries), np.array(binaries, dtype=np.int32),
                            np.array([highspy.HighsVarType.kInteger] * len(binaries)))

    def add_row(lo: float, hi: float, cols: List[int], vals: List[float]) -> None:
        h.addRow(lo, hi, len(cols), np.array(cols, dtype=np.int32), np.array(vals))

    for i, node in enumerate(nodes):
        times = [o["time_s"] for o in node["options"]]
        add_row(1.0, 1.0, x_index[i], [1.0] * len(times))  # one option
        # s[i] + d[i] - T <= 0
        add_row(-inf, 0.0, [s_base + i] + x_index[i] + [t_col], [1.0] + times + [-1.0])
        for j in node["successors"]:
            # s[j] - s[i] - d[i] >= 0
            add_row(0.0, inf, [s_base + j, s_base + i] + x_index[i],
                    [1.0, -1.0] + [-t for t in times])
    if start is not None:
        values0 = _start_values(nodes, start, len(costs), x_index, s_base, t_col)
        if values0[t_col] > deadline_s * (1 + 1e-9):
            raise ValueError(f"the start plan takes {values0[t_col]} s, over the deadline "
                             f"{deadline_s} s")
        values0[t_col] = min(values0[t_col], float(deadline_s))
        h.setSolution(len(values0), np.arange(len(values0), dtype=np.int32), np.array(values0))
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    bound = float(info.mip_dual_bound)
    gap = float(info.mip_gap)
    seconds = float(h.getRunTime())
    values = h.getSolution().col_value
    if len(values) != len(costs) or info.primal_solution_status == 0:
        return MilpResult(status, None, bound, None, None, gap, seconds)
    options = [max(range(len(row)), key=lambda k: values[row[k]]) for row in x_index]
    return MilpResult(status, float(info.objective_function_value), bound, float(values[t_col]),
                      options, gap, seconds)


def _start_values(nodes: List[Dict[str, Any]], start: Sequence[int], num_cols: int,
                  x_index: List[List[int]], s_base: int, t_col: int) -> List[float]:
    """Column values of a plan: its binaries, earliest start times and longest path."""
    n = len(nodes)
    if len(start) != n:
        raise ValueError(f"a start plan has one option index per node ({n}), got {len(start)}")
    values = [0.0] * num_cols
    duration = []
    for i, node in enumerate(nodes):
        k = int(start[i])
        if not 0 <= k < len(node["options"]):
            raise ValueError(f"node {i} has {len(node['options'])} options, got index {k}")
        values[x_index[i][k]] = 1.0
        duration.append(float(node["options"][k]["time_s"]))
    # Earliest starts in a topological order (Kahn's algorithm on the successor lists).
    indegree = [0] * n
    for node in nodes:
        for j in node["successors"]:
            indegree[j] += 1
    ready = [i for i in range(n) if indegree[i] == 0]
    begin = [0.0] * n
    makespan = 0.0
    while ready:
        i = ready.pop()
        finish = begin[i] + duration[i]
        makespan = max(makespan, finish)
        for j in nodes[i]["successors"]:
            begin[j] = max(begin[j], finish)
            indegree[j] -= 1
            if indegree[j] == 0:
                ready.append(j)
    for i in range(n):
        values[s_base + i] = begin[i]
    values[t_col] = makespan
    return values
