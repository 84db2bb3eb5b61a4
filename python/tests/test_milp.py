"""The exact oracle of the discrete optimum (perseus.milp, HiGHS) against brute force, and the
planner's plans against the oracle, on instances small enough to solve exactly in CI."""

import itertools
import pathlib

import pytest

import perseus
from perseus.milp import optimal_plan

pytest.importorskip("highspy")


def thinned_profile(source: str, out: pathlib.Path, keep) -> str:
    """The profile with only the frequencies in `keep` (every stage, every instruction)."""
    lines = pathlib.Path(source).read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if int(line.split(",")[2]) in keep]
    out.write_text("\n".join(kept) + "\n")
    return str(out)


@pytest.fixture
def tiny(tmp_path, gpt3_profile):
    """GPT-3's 8 stages, one microbatch, two clocks: 16 computations, 2^16 plans (or fewer
    where an option is not Pareto)."""
    path = thinned_profile(gpt3_profile, tmp_path / "two_clocks.csv", {1410, 1005})
    return perseus.plan(path, stages=8, microbatches=1, blocking_power_w=83.64)


def brute_force(frontier, deadline_s):
    nodes = frontier.problem()["nodes"]
    best = None
    for options in itertools.product(*[range(len(n["options"])) for n in nodes]):
        t, e = frontier.evaluate(list(options))
        if t <= deadline_s and (best is None or e < best[0]):
            best = (e, list(options))
    return best


@pytest.mark.parametrize("factor", [1.0, 1.03, 1.08, 1.3])
def test_the_milp_is_the_brute_force_optimum(tiny, factor):
    t_max, _ = tiny.all_max
    deadline = t_max * factor
    exact = brute_force(tiny, deadline)
    assert exact is not None
    result = optimal_plan(tiny.problem(), deadline)
    assert result.optimal
    assert result.energy_j == pytest.approx(exact[0], rel=1e-9)
    # Its plan, evaluated by the planner, is what it says.
    t, e = tiny.evaluate(result.options)
    assert t <= deadline * (1 + 1e-12)
    assert e == pytest.approx(result.energy_j, rel=1e-9)
    # The planner's plan for that deadline meets it and never beats the optimum.
    k = tiny.index_for_deadline(deadline)
    assert k is not None and tiny.points[k].time_s <= deadline
    assert tiny.points[k].energy_j >= exact[0] * (1 - 1e-12)


def test_no_plan_is_infeasible_below_the_fastest(tiny):
    fastest = min(p.time_s for p in tiny.points)
    result = optimal_plan(tiny.problem(), fastest * 0.9)
    assert result.energy_j is None and result.options is None
    assert "nfeasible" in result.status


# GPT-3, 8 stages x 2 microbatches, four clocks: solved exactly in seconds. The planner's
# frontier plans, at several deadlines, against the optimum: never better, and the gap is
# measured (printed; the target of 0.1 points is not met everywhere yet, see
# bench/RESULTS.md).
def test_the_planner_against_the_optimum(tmp_path, gpt3_profile):
    path = thinned_profile(gpt3_profile, tmp_path / "four_clocks.csv", {1410, 1200, 1005, 900})
    f = perseus.plan(path, stages=8, microbatches=2, blocking_power_w=83.64)
    t_max, e_max = f.all_max
    problem = f.problem()
    for factor in (1.0, 1.05, 1.1):
        deadline = t_max * factor
        result = optimal_plan(problem, deadline, time_limit_s=120)
        assert result.optimal, result.status
        k = f.index_for_deadline(deadline)
        assert k is not None
        ours = f.points[k].energy_j
        assert ours >= result.energy_j * (1 - 1e-12)
        print(f"D={factor:.2f}: planner {100 * (1 - ours / e_max):.3f}%, optimum "
              f"{100 * (1 - result.energy_j / e_max):.3f}%")


def test_bad_plans_are_refused(tiny):
    n = len(tiny.problem()["nodes"])
    with pytest.raises(perseus.InvalidInputError, match="one option index per computation"):
        tiny.evaluate([0] * (n - 1))
    with pytest.raises(perseus.InvalidInputError, match="options, got index"):
        tiny.evaluate([99] * n)
