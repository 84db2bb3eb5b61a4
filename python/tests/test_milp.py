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
    # The planner's plan for that deadline meets it and never beats the optimum; the plan the
    # user gets (the point improved by the local search) is never worse than the point.
    k = tiny.index_for_deadline(deadline)
    assert k is not None and tiny.points[k].time_s <= deadline
    assert tiny.points[k].energy_j >= exact[0] * (1 - 1e-12)
    improved = tiny.plan_for_deadline(deadline)
    assert improved is not None and improved["time_s"] <= deadline * (1 + 1e-9)
    assert exact[0] * (1 - 1e-12) <= improved["energy_j"] <= tiny.points[k].energy_j * (1 + 1e-12)
    assert tiny.evaluate(improved["options"]) == pytest.approx(
        (improved["time_s"], improved["energy_j"]), rel=1e-12)


def test_no_plan_is_infeasible_below_the_fastest(tiny):
    fastest = min(p.time_s for p in tiny.points)
    result = optimal_plan(tiny.problem(), fastest * 0.9)
    assert result.energy_j is None and result.options is None
    assert "nfeasible" in result.status


# GPT-3, 8 stages x 2 microbatches, four clocks: solved exactly in seconds. The planner's
# plans for several deadlines against the optimum: never better; the plan the user gets
# (plan_for_deadline) within 0.1 percentage points of it (the target; the frontier's
# point alone is printed beside it).
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
        point = f.points[k].energy_j
        assert point >= result.energy_j * (1 - 1e-12)
        improved = f.plan_for_deadline(deadline)
        assert improved is not None
        ours = improved["energy_j"]
        assert result.energy_j * (1 - 1e-12) <= ours <= point * (1 + 1e-12)
        saving = 100 * (1 - ours / e_max)
        optimum = 100 * (1 - result.energy_j / e_max)
        print(f"D={factor:.2f}: frontier point {100 * (1 - point / e_max):.3f}%, planner "
              f"{saving:.3f}%, optimum {optimum:.3f}%")
        assert optimum - saving <= 0.1


def test_plan_for_deadline_objectives_and_errors(tiny):
    t_max, _ = tiny.all_max
    own = tiny.plan_for_deadline(t_max * 1.1)
    wait = tiny.plan_for_deadline(t_max * 1.1, objective="at_deadline")
    assert own is not None and wait is not None
    # Waiting at blocking power until the deadline is counted in the second objective only.
    p = tiny.problem()
    idle = p["blocking_power_w"] * p["num_gpus"]
    assert wait["objective_j"] == pytest.approx(
        wait["energy_j"] + idle * (t_max * 1.1 - wait["time_s"]), rel=1e-12)
    assert own["objective_j"] == own["energy_j"]
    assert len(own["plan"]) == 8 and not own["budget_spent"]
    stopped = tiny.plan_for_deadline(t_max * 1.1, max_work=0)
    assert stopped is not None and stopped["budget_spent"] and stopped["moves"] == 0
    assert tiny.plan_for_deadline(min(q.time_s for q in tiny.points) * 0.5) is None
    with pytest.raises(perseus.InvalidInputError, match="objective"):
        tiny.plan_for_deadline(t_max, objective="fastest")
    with pytest.raises(perseus.InvalidInputError, match="max_work"):
        tiny.plan_for_deadline(t_max, max_work=-1)


def test_bad_plans_are_refused(tiny):
    n = len(tiny.problem()["nodes"])
    with pytest.raises(perseus.InvalidInputError, match="one option index per computation"):
        tiny.evaluate([0] * (n - 1))
    with pytest.raises(perseus.InvalidInputError, match="options, got index"):
        tiny.evaluate([99] * n)
