"""Runs lowtime, the Perseus authors' planner, on one planning problem and times it.

Run by bench/lowtime_compare.py inside one of the lowtime virtual environments
(bench/lowtime_setup.sh); it imports nothing of ours. Reads one JSON object (a file
argument, or stdin):

    {"unit_time": 0.001, "blocking_power_w": 83.64, "num_stages": 8,
     "search_strategy": "best", "noise_factor": 0.95,
     "profile": [{"stage": 0, "instruction": "forward", "frequency": 1410,
                  "time": 0.0501, "energy": 23.8}, ...],
     "nodes": [{"stage": 0, "kind": "forward", "microbatch": 0, "successors": [1, 16]}, ...]}

`profile` is the profile CSV's rows as they are; `nodes` is the DAG (our planner's
problem(): one node per forward or backward, edges to its successors). The problem is
built the way the authors' example driver for lowtime does it (Perseus' run script):
per (stage, instruction) `ExecutionOption`s from every profile row, filtered by
`CandidateExecutionOptions` (with the noise factor when three options or fewer are
left), costs made effective (energy - P_blk * quantised time), an `ExponentialModel`
fit (grid search, strategy "best"), the DAG as a networkx DiGraph of `Forward` /
`Backward` instructions with dummy source 0 and sink 1, then `PhillipsDessouky.run()`
to the end. Each iteration's energy is the driver's "refined cost":
cost + num_stages * real_time * P_blk.

Prints one JSON object: the versions, the phases' wall times, the frontier (one point
per iteration), the knobs (frequencies, one per node) of some plans, and whether the
DAG equals the one lowtime's own Synchronous1F1B schedule and DependencyResolver build.
Progress goes to stderr.
"""

from __future__ import annotations

import itertools
import json
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal, Type

import lowtime
import networkx as nx
import numpy as np
import scipy
from lowtime.cost_model import ExponentialModel
from lowtime.graph_utils import DependencyResolver, add_sink_node, add_source_node
from lowtime.operation import CandidateExecutionOptions, ExecutionOption, OperationSpec
from lowtime.perseus.instruction import (
    Backward,
    Forward,
    Instruction,
    backward_dep,
    forward_dep,
)
from lowtime.perseus.schedule import Synchronous1F1B
from lowtime.solver import PhillipsDessouky

KINDS: dict[str, Type[Instruction]] = {"forward": Forward, "backward": Backward}


def build_specs(
    problem: dict[str, Any],
) -> tuple[dict[int, dict[Type[Instruction], OperationSpec[int]]], list[dict[str, Any]]]:
    """OperationSpecs per stage and instruction type, as the authors' driver builds them."""
    unit_time = float(problem["unit_time"])
    p_blk = float(problem["blocking_power_w"])
    noise_factor = float(problem.get("noise_factor", 0.95))
    strategy_name = str(problem.get("search_strategy", "best"))
    if strategy_name not in ("best", "first"):
        raise ValueError(f"search_strategy must be best or first, not {strategy_name}")
    strategy: Literal["best", "first"] = "best" if strategy_name == "best" else "first"
    specs: dict[int, dict[Type[Instruction], OperationSpec[int]]] = {}
    info: list[dict[str, Any]] = []
    for kind, instruction in KINDS.items():
        for stage in range(int(problem["num_stages"])):
            rows = [
                r
                for r in problem["profile"]
                if int(r["stage"]) == stage and str(r["instruction"]) == kind
            ]
            if not rows:
                raise ValueError(f"no profile rows for stage {stage} {kind}")
            options = [
                ExecutionOption[int](
                    real_time=float(r["time"]),
                    unit_time=unit_time,
                    cost=float(r["energy"]),
                    knob=int(r["frequency"]),
                )
                for r in rows
            ]
            candidates = CandidateExecutionOptions[int](options=options)
            used_noise = False
            if len(candidates.options) <= 3:
                candidates = CandidateExecutionOptions[int](
                    options=options, noise_factor=noise_factor
                )
                used_noise = True
            for option in candidates.options:
                option.cost -= p_blk * option.quant_time * option.unit_time
            model = ExponentialModel(candidates, search_strategy=strategy)
            specs.setdefault(stage, {})[instruction] = OperationSpec[int](
                options=candidates, cost_model=model
            )
            info.append(
                {
                    "stage": stage,
                    "kind": kind,
                    "candidates": len(candidates.options),
                    "noise_factor_used": used_noise,
                    "coefficients": [float(c) for c in model.coefficients],
                }
            )
    return specs, info


def build_dag(
    nodes: Sequence[dict[str, Any]],
    specs: dict[int, dict[Type[Instruction], OperationSpec[int]]],
) -> tuple[nx.DiGraph, list[Instruction]]:
    """The DAG of `nodes`: node i is networkx node i + 2; 0 is the source, 1 the sink."""
    dag = nx.DiGraph()
    instructions: list[Instruction] = []
    for i, node in enumerate(nodes):
        instruction = KINDS[str(node["kind"])]
        stage = int(node["stage"])
        inst = instruction(
            spec=specs[stage][instruction],
            stage_id=stage,
            micro_batch_id=int(node["microbatch"]),
        )
        dag.add_node(i + 2, op=inst)
        instructions.append(inst)
    for i, node in enumerate(nodes):
        for j in node["successors"]:
            dag.add_edge(i + 2, int(j) + 2)
    add_source_node(dag, 0)
    add_sink_node(dag, 1)
    dag.graph["source_node"] = 0
    dag.graph["sink_node"] = 1
    return dag, instructions


def lowtime_1f1b_edges(
    num_stages: int,
    num_microbatches: int,
    specs: dict[int, dict[Type[Instruction], OperationSpec[int]]],
) -> set[tuple[tuple[str, int, int], tuple[str, int, int]]]:
    """The edges lowtime's Synchronous1F1B and DependencyResolver give, by (kind, stage, mb)."""
    insts: list[Instruction] = []
    edges: set[tuple[tuple[str, int, int], tuple[str, int, int]]] = set()

    def key(inst: Instruction) -> tuple[str, int, int]:
        return (type(inst).__name__.lower(), inst.stage_id, inst.micro_batch_id)

    for stage in range(num_stages):
        schedule = Synchronous1F1B(
            num_stages=num_stages,
            num_micro_batches=num_microbatches,
            stage_id=stage,
            operation_spec_map=specs[stage],
        )
        stage_insts = list(schedule)
        for a, b in zip(stage_insts, stage_insts[1:]):
            edges.add((key(a), key(b)))
        insts.extend(stage_insts)
    resolver = DependencyResolver(
        dependency_rules=[forward_dep, backward_dep], node_type=Instruction
    )
    for a, b in itertools.product(insts, insts):
        if resolver.is_dependent(a, b):
            edges.add((key(a), key(b)))
    return edges


def main(argv: Sequence[str]) -> int:
    """Entry point: argv[1] is the problem JSON file, or '-' / nothing for stdin."""
    if len(argv) > 1 and argv[1] != "-":
        with open(argv[1], encoding="utf-8") as f:
            problem = json.load(f)
    else:
        problem = json.load(sys.stdin)
    nodes: list[dict[str, Any]] = problem["nodes"]
    num_stages = int(problem["num_stages"])
    p_blk = float(problem["blocking_power_w"])

    t0 = time.perf_counter()
    specs, spec_info = build_specs(problem)
    t1 = time.perf_counter()
    dag, instructions = build_dag(nodes, specs)
    t2 = time.perf_counter()
    initial_knobs = [int(inst.assigned_knob) for inst in instructions]

    frontier: list[tuple[int, float, float]] = []
    snapshot_s = 0.0
    first_knobs: list[int] = []
    last_knobs: list[int] = []
    lowest_knobs: list[int] = []
    lowest_energy = float("inf")
    t3 = time.perf_counter()
    solver = PhillipsDessouky(dag)
    for result in solver.run():
        energy = result.cost + num_stages * result.real_time * p_blk
        frontier.append((int(result.quant_time), float(result.real_time), float(energy)))
        # The knobs of every yielded plan are read (the last one yielded is the fastest:
        # when the solver stops, it may have changed some durations without yielding);
        # that time is measured and taken out of the solve time.
        s = time.perf_counter()
        last_knobs = [int(inst.assigned_knob) for inst in instructions]
        if not first_knobs:
            first_knobs = last_knobs
        if energy < lowest_energy:
            lowest_energy = energy
            lowest_knobs = last_knobs
        if len(frontier) % 200 == 0:
            print(
                f"lowtime {lowtime.__version__}: {len(frontier)} iterations, "
                f"T = {result.real_time:.4f} s, {time.perf_counter() - t3:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        snapshot_s += time.perf_counter() - s
    t4 = time.perf_counter()

    # Untimed: is the DAG the one lowtime's own 1F1B schedule gives?
    keys = [(str(n["kind"]), int(n["stage"]), int(n["microbatch"])) for n in nodes]
    ours = {(keys[i], keys[int(j)]) for i, n in enumerate(nodes) for j in n["successors"]}
    num_microbatches = 1 + max(k[2] for k in keys)
    theirs = lowtime_1f1b_edges(num_stages, num_microbatches, specs)

    out = {
        "versions": {
            "lowtime": lowtime.__version__,
            "networkx": nx.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "python": platform.python_version(),
        },
        "seconds": {
            "prepare": t1 - t0,
            "dag": t2 - t1,
            "solve": (t4 - t3) - snapshot_s,
            "snapshots": snapshot_s,
            "total": (t4 - t0) - snapshot_s,
        },
        "aon_nodes": dag.number_of_nodes(),
        "aon_edges": dag.number_of_edges(),
        "dag_matches_lowtime_1f1b": ours == theirs,
        "dag_edges": len(ours),
        "lowtime_1f1b_edges": len(theirs),
        "specs": spec_info,
        "frontier": frontier,
        "knobs": {
            "initial": initial_knobs,
            "first": first_knobs,
            "last": last_knobs,
            "lowest_energy": lowest_knobs,
        },
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
