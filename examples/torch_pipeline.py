#!/usr/bin/env python3
"""A small GPT trained with torch.distributed.pipelining, driven by Perseus.

One process per pipeline rank (and per pipeline with --dp), gloo on CPU, real
PipelineStage's and schedule.step(): real forward, backward and Adam steps on
synthetic tokens. --schedule is one of torch 2.13's seven schedules (GPipe,
1F1B, Interleaved1F1B, LoopedBFS, InterleavedZeroBubble, ZBVZeroBubble,
DualPipeV; the multi-stage ones hold two model stages per rank, V-shaped for
ZBVZeroBubble and DualPipeV) or one of the planner's own (1f1b, gpipe,
interleaved-1f1b, zb-h1: `perseus show-schedule --csv` writes their order,
torch's _PipelineScheduleRuntime runs it after _load_csv, as torchtitan runs
pipeline_parallel_schedule_csv).

Simulated GPUs: each rank is one GPU holding one simulated GPU per model stage
(perseus.SimBackend on the GPT-3 profile, times x --time-scale, input and
weight backward half of the backward). After torch's computation of a stage
(forward_one_chunk, backward_one_chunk, backward_weight_one_chunk), that
stage's simulated GPU runs the same kind and takes its profiled time at the
rank's clock, which the hook sets for all of the rank's simulated GPUs; waiting
draws the blocking power. At --time-scale 1 a forward takes 50 ms, and the
tiny model's own few milliseconds per computation, which the plan does not
see, stay small beside it.

With --perseus it starts (or connects to, --server) `perseus serve`, creates
the job with the schedule's compute-only CSV (perseus.torch.
schedule_from_torch, on rank 0), profiles every model stage online on its
simulated GPU (rank 0 uploads all stages' measurements as one profile CSV),
waits for the plan and trains with a PerseusHook through
perseus.torch.wrap_schedule; every iteration each rank's executed order is
compared with the plan the coordinator gave it. It first trains the same
number of iterations at the highest clock (the baseline; --alternate
alternates baseline and Perseus iterations after planning instead). The last
line printed is one JSON object: {schedule, stages, microbatches, iterations,
loss_first, loss_last, baseline: {time_s, energy_j}, perseus: {time_s,
energy_j}, saving_pct, slowdown_pct, order_checked, mismatches, plan_version,
planned, ...}: the median iteration's wall time between barriers (max over
ranks) and energy (simulated computation energy plus blocking power x idle
time, summed over ranks); per_iteration lists every iteration; planned is the
coordinator's frontier point for the plan against all-max.

plan_versions_by_pipeline lists, per pipeline, per Perseus iteration, the oldest
plan version its ranks ran (last_plan_versions_by_pipeline: each pipeline's first
rank's last version, what plan_versions_by_pipeline was before).

With --dp 2 --straggler, pipeline 1 runs 20% slower for --straggler-iterations N
iterations (default 8), then N normal ones; the baseline and the Perseus run both
run that pattern (2N iterations each, --iterations is ignored), so the baseline is
all-max with the same straggler. Nothing tells the coordinator: it detects the
straggler from the hooks' iteration reports (straggler_detection, K = 3 slow
iterations), moves pipeline 0 to the cheapest plan that finishes by the
straggler's time (a new version, taken at a step boundary after the client's
refresh, poll_interval_s 0.1), and back to the fastest plan once pipeline 1 has
recovered. The JSON then adds straggler_detected_after_iterations (slow
iterations before pipeline 0 first ran a newer version), straggler_recovered
(pipeline 0 ran the fastest plan again, in a newer version, after the slow
iterations), straggler_recovered_after_iterations (normal iterations before
that), run_saving_pct (mean energy per iteration over the whole run, Perseus
against that baseline) and straggler: {pipeline, slowdown, slow_iterations,
baseline and perseus time_s_per_iteration and energy_j_per_iteration (means),
per_iteration: [{slow, plan_versions, compute_time_s (the hooks' time_s, max
over each pipeline's ranks), energy_j (per pipeline), time_s}], detected_total,
recovered_total (the coordinator's perseus_stragglers_*_total for the job)}.

    .venv/bin/python examples/torch_pipeline.py --schedule DualPipeV --stages 4 \
        --microbatches 8 --iterations 6 --perseus --json
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
if (REPO / "build" / "python" / "perseus").is_dir():  # a build tree; else the installed package
    sys.path.insert(0, str(REPO / "build" / "python"))

try:
    import torch  # noqa: E402
except ImportError:
    raise SystemExit("PyTorch is missing: run this with the project's environment "
                     "(.venv/bin/python, made by scripts/setup.sh)")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.distributed.pipelining import PipelineStage  # noqa: E402
from torch.distributed.pipelining import schedules as ts  # noqa: E402
from torch.distributed.pipelining._utils import generate_rank_to_stage_mapping  # noqa: E402

import perseus  # noqa: E402
import perseus.torch as pt  # noqa: E402

VOCAB, SEQ, DIM, BATCH = 32, 16, 32, 4  # BATCH: sequences per microbatch
PROFILE = REPO / "data" / "profiles" / "gpt3-175b+a100_sxm_bf16.csv"
PROFILE_STAGES = 8
BLOCKING_POWER_W = 83.64  # the paper's A100 figure, per GPU
TORCH_SCHEDULES = ["GPipe", "1F1B", "Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble",
                   "ZBVZeroBubble", "DualPipeV"]
BUILTIN_SCHEDULES = ["1f1b", "gpipe", "interleaved-1f1b", "zb-h1"]
# The perseus command: the build tree's, else the installed package's.
_BUILT = REPO / "build" / "bin" / "perseus"
PERSEUS = str(_BUILT) if _BUILT.exists() else "perseus"


# ---- the model -----------------------------------------------------------------

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
        self.attn = nn.MultiheadAttention(DIM, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(DIM, 4 * DIM), nn.GELU(), nn.Linear(4 * DIM, DIM))
        self.register_buffer("mask", torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), 1))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=self.mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class ModelStage(nn.Module):
    """Model stage i of n: the first embeds tokens, the last predicts the next token."""

    def __init__(self, index, total):
        super().__init__()
        self.first, self.last = index == 0, index == total - 1
        if self.first:
            self.embed = nn.Embedding(VOCAB, DIM)
            self.pos = nn.Parameter(torch.zeros(SEQ, DIM))
        self.block = Block()
        if self.last:
            self.head = nn.Sequential(nn.LayerNorm(DIM), nn.Linear(DIM, VOCAB))

    def forward(self, x):
        if self.first:
            x = self.embed(x) + self.pos
        x = self.block(x)
        return self.head(x) if self.last else x


def loss_fn(logits, targets):
    return nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def batch(iteration, microbatches):
    """Synthetic sequences x, x+k, x+2k, ... (mod VOCAB): learnable next tokens."""
    g = torch.Generator().manual_seed(iteration)
    rows = BATCH * microbatches
    start = torch.randint(0, VOCAB, (rows, 1), generator=g)
    step = torch.randint(1, 4, (rows, 1), generator=g)
    seq = (start + step * torch.arange(SEQ + 1)) % VOCAB
    return seq[:, :-1], seq[:, 1:]


# ---- schedules -----------------------------------------------------------------

def stages_per_rank(name):
    if name in TORCH_SCHEDULES:
        return 2 if issubclass(ts.get_schedule_class(name), ts.PipelineScheduleMulti) else 1
    return 2 if name == "interleaved-1f1b" else 1


def rank_stages(name, rank, ranks, csv_path):
    """The model stages pipeline rank `rank` holds."""
    if name in TORCH_SCHEDULES:
        if stages_per_rank(name) == 1:
            return [rank]
        v = ts.get_schedule_class(name) in (ts.ScheduleZBVZeroBubble, ts.ScheduleDualPipeV)
        return generate_rank_to_stage_mapping(ranks, 2 * ranks, style="v" if v else "loop")[rank]
    row = pathlib.Path(csv_path).read_text().splitlines()[rank].split(",")
    return sorted({int(ts._Action.from_str(cell).stage_index) for cell in row if cell})


def builtin_csv(name, stages, microbatches, path):
    """The planner's schedule `name` in torch's compute-only CSV (perseus show-schedule --csv)."""
    command = [PERSEUS, "show-schedule", "--schedule", name,
               "--stages", str(stages), "--microbatches", str(microbatches), "--csv", path]
    if name == "interleaved-1f1b":
        command += ["--virtual-stages", "2"]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"perseus show-schedule failed (exit status {run.returncode}): "
                         f"{run.stderr.strip()}")


# ---- one GPU of a rank: a simulated GPU per model stage -------------------------------------

class RankGpu:
    """One physical GPU: a simulated GPU per model stage the rank holds, one clock for all.
    energy_mj() counts the computations' energy and the blocking power while idle."""

    def __init__(self, sims, blocking_power_w):
        self.sims = sims  # {stage index: perseus.SimGpu}
        self.clocks = next(iter(sims.values())).supported_sm_clocks()
        self.name = next(iter(sims.values())).name
        self.blocking_power_w = blocking_power_w
        self.busy_s = 0.0
        self.slow = 1.0  # > 1: this pipeline straggles
        self.origin = time.monotonic()
        self.mhz = self.clocks[0]
        self.trace = None  # a list: (stage, kind, microbatch, began, torch done, end, MHz)

    def lock_sm_clock(self, mhz):
        self.mhz = mhz
        for gpu in self.sims.values():
            gpu.lock_sm_clock(mhz)

    def run(self, stage, kind, microbatch, began):
        torch_done = time.monotonic()
        t = self.sims[stage].run(kind)  # sleeps the profiled time at the clock
        if self.slow > 1.0:
            time.sleep(t * (self.slow - 1.0))
            t *= self.slow
        self.busy_s += t
        if self.trace is not None:
            self.trace.append((stage, kind, microbatch, began, torch_done, time.monotonic(),
                               self.mhz))

    def compute_energy_j(self):
        return sum(gpu.energy_mj() for gpu in self.sims.values()) / 1000.0

    # The Device interface PerseusHook reads for its iteration reports.
    def now(self):
        return time.monotonic()

    def energy_mj(self):
        idle = max(0.0, time.monotonic() - self.origin - self.busy_s)
        return int(1000 * (self.compute_energy_j() + self.blocking_power_w * idle))


def simulate(stage, gpu):
    """After torch's computation of `stage`, its simulated GPU runs the same kind."""
    index = int(stage.stage_index)
    forward, backward = stage.forward_one_chunk, stage.backward_one_chunk
    weight = stage.backward_weight_one_chunk

    def forward_one_chunk(fwd_chunk_id, *args, **kwargs):
        began = time.monotonic()
        out = forward(fwd_chunk_id, *args, **kwargs)
        gpu.run(index, "forward", fwd_chunk_id, began)
        return out

    def backward_one_chunk(bwd_chunk_id, *args, **kwargs):
        # (bwd_chunk_id, loss=None, full_backward=True, last_backward=False)
        full = kwargs["full_backward"] if "full_backward" in kwargs else (
            args[1] if len(args) > 1 else True)
        began = time.monotonic()
        out = backward(bwd_chunk_id, *args, **kwargs)
        gpu.run(index, "backward" if full else "backward_input", bwd_chunk_id, began)
        return out

    def backward_weight_one_chunk(bwd_chunk_id, *args, **kwargs):
        began = time.monotonic()
        out = weight(bwd_chunk_id, *args, **kwargs)
        gpu.run(index, "backward_weight", bwd_chunk_id, began)
        return out

    stage.forward_one_chunk = forward_one_chunk
    stage.backward_one_chunk = backward_one_chunk
    stage.backward_weight_one_chunk = backward_weight_one_chunk


# ---- one process ---------------------------------------------------------------

class Worker:
    def set_clock(self, mhz):
        """The hook's set_frequency: through gpud (--gpud), then the simulated GPU."""
        if self.remote is not None:
            self.remote.lock_sm_clock(mhz)
        self.gpu.lock_sm_clock(mhz)

    def __init__(self, rank, args, pp_group, dp_group):
        self.rank, self.args = rank, args
        self.S, self.M = args.stages, args.microbatches
        self.pp_rank, self.pipeline = rank % self.S, rank // self.S
        self.dp_group = dp_group
        self.indices = rank_stages(args.schedule, self.pp_rank, self.S, args.csv)
        self.total = stages_per_rank(args.schedule) * self.S
        self.modules, stages = [], []
        for i in self.indices:
            torch.manual_seed(i)  # every pipeline starts from the same weights
            module = ModelStage(i, self.total)
            self.modules.append(module)
            # Static shapes: no metadata exchange at the first step. A later stage's example
            # input requires grad: its gradient goes back.
            example = (torch.zeros(BATCH, SEQ, dtype=torch.long) if i == 0
                       else torch.zeros(BATCH, SEQ, DIM, requires_grad=True))
            output = torch.zeros(BATCH, SEQ, VOCAB if i == self.total - 1 else DIM,
                                 requires_grad=True)
            stages.append(PipelineStage(module, i, self.total, torch.device("cpu"),
                                        input_args=example, output_args=output, group=pp_group))
        params = [p for m in self.modules for p in m.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=3e-3)
        self.sim = perseus.SimBackend(args.sim_profile, blocking_power_w=BLOCKING_POWER_W,
                                      real_time=True)
        self.gpu = RankGpu({i: self.sim[i] for i in self.indices}, BLOCKING_POWER_W)
        self.clocks = self.gpu.clocks
        # --gpud: clock changes go through the clock daemon (this process needs
        # no privilege; gpud checks the clock and restores it if the rank dies),
        # and the rank's simulated GPU follows them for time and energy.
        self.remote = None
        if args.gpud:
            gpus = perseus.GpudBackend(args.gpud)
            self.remote = gpus[rank % len(gpus)]
        for stage in stages:
            simulate(stage, self.gpu)
        if args.schedule in TORCH_SCHEDULES:
            cls = ts.get_schedule_class(args.schedule)
            self.schedule = (cls(stages, self.M, loss_fn=loss_fn) if len(stages) > 1 or
                             issubclass(cls, ts.PipelineScheduleMulti)
                             else cls(stages[0], self.M, loss_fn=loss_fn))
        else:
            self.schedule = ts._PipelineScheduleRuntime(stages, self.M, loss_fn=loss_fn)
            self.schedule._load_csv(args.csv)
        self.traces = []  # with --trace: every iteration's computations

    def timed_step(self, it):
        """One training iteration between barriers: (time_s, energy_j, loss) over all ranks."""
        x, y = batch(it, self.M)
        self.optimizer.zero_grad()
        dist.barrier()
        start, energy0, busy0 = time.monotonic(), self.gpu.compute_energy_j(), self.gpu.busy_s
        if self.args.trace:
            self.gpu.trace = []
        losses = []
        self.schedule.step(x, target=y, losses=losses)
        if self.args.trace:
            self.traces.append({"iteration": it, "start": start, "computations": self.gpu.trace})
        if self.dp_group is not None:  # average the gradients of the copies of each stage
            for p in self.optimizer.param_groups[0]["params"]:
                dist.all_reduce(p.grad, group=self.dp_group)
                p.grad /= self.args.dp
        self.optimizer.step()
        elapsed = time.monotonic() - start
        figures = torch.tensor([elapsed], dtype=torch.float64)
        dist.all_reduce(figures, op=dist.ReduceOp.MAX)
        iteration_s = figures.item()
        # Energy: the computations (simulated GPUs) plus blocking power while waiting.
        energy = (self.gpu.compute_energy_j() - energy0) + \
            BLOCKING_POWER_W * max(0.0, iteration_s - (self.gpu.busy_s - busy0))
        loss = sum(float(v.detach()) for v in losses) / len(losses) if losses else 0.0
        self.last_energy_j = energy  # this rank's share
        total = torch.tensor([energy, loss, 1.0 if losses else 0.0], dtype=torch.float64)
        dist.all_reduce(total)
        return iteration_s, total[0].item(), total[1].item() / total[2].item()

    def profile(self, kinds):
        """Online profiling of every model stage on its simulated GPU, highest clock first."""
        rows = []
        for index, module in zip(self.indices, self.modules):
            gpu = self.sim[index]
            sweep = perseus.FrequencySweep(self.clocks, kinds, warmup=0, iterations=2)
            x = (torch.randint(0, VOCAB, (BATCH, SEQ)) if index == 0
                 else torch.randn(BATCH, SEQ, DIM, requires_grad=True))
            while not sweep.done:
                gpu.lock_sm_clock(sweep.frequency)
                module(x).float().sum().backward()  # the real computation, unmeasured
                for kind in kinds:
                    with perseus.measure(gpu) as m:
                        gpu.run(kind)
                    sweep.record(kind, m.time_s, m.energy_j)
                sweep.end_iteration()
            gpu.reset_sm_clock()
            module.zero_grad()
            rows += [(index, r.kind, r.frequency_mhz, r.time_s, r.energy_j) for r in sweep.rows]
        return rows


def http(base, method, path, body=None, content_type="application/json"):
    data = None if body is None else (body.encode() if isinstance(body, str)
                                      else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{method} {path}: HTTP {error.code}: "
                           f"{error.read().decode(errors='replace')}") from None


def metrics_text(base):
    with urllib.request.urlopen(base + "/metrics", timeout=60) as response:
        return response.read().decode()


def create_job(args, order):
    """The coordinator's job for this schedule: its compute-only CSV. With --profile-in-job
    the blocking power is not given: the ranks measure it with their profiles."""
    body = {"name": f"torch_pipeline example ({args.schedule})",
            "schedule_csv": order.csv(), "stages": args.stages,
            "microbatches": args.microbatches, "dp": args.dp}
    if not args.profile_in_job:
        body["blocking_power_w"] = BLOCKING_POWER_W
    return http(args.server, "POST", "/v1/jobs", body)["job_id"]


def profiled_kinds(order):
    """The computation kinds the schedule runs (an overlap runs a forward and a backward or
    backward_input), in the profile's order."""
    used = {k for r in order.ranks for s in r
            for k in ([s.kind] if s.backward is None else ["forward", s.backward.kind])}
    return [k for k in ("forward", "backward", "backward_input", "backward_weight")
            if k in used]


def profile_in_job(w, args, rank, world, job_id, order, step):
    """--profile-in-job: the job starts without a profile. Each rank's hook runs 1 warm-up and
    --baseline-iterations iterations at the highest clock, profiles itself over the next
    iterations (one clock per iteration, every computation measured), uploads its rows and
    measured blocking power, runs at the highest clock until the coordinator's plan arrives
    and then follows it, all in one training loop. It stops once every rank ran --iterations
    planned iterations (a collective decision: the ranks' phases change at different steps).
    Returns the JSON fields of this mode (rank 0) or None."""
    client = perseus.Client(args.server, job_id=job_id, rank=rank, pp_rank=w.pp_rank,
                            dp_rank=w.pipeline, frequencies_mhz=w.clocks, gpu_name=w.gpu.name,
                            poll_interval_s=0.2)
    step_clocks = max(1, len(w.clocks) // args.profile_clocks) if args.profile_clocks else 1
    profile = pt.InJobProfile(frequencies_mhz=w.clocks[::step_clocks],
                              kinds=profiled_kinds(order), warmup_iterations=0,
                              measure_iterations=2)
    hook = pt.PerseusHook(client=client, set_frequency=w.set_clock, device=w.gpu,
                          strict=False, rank=w.pp_rank, profile=profile,
                          baseline_iterations=args.baseline_iterations)
    wrapper = pt.wrap_schedule(w.schedule, hook, check_order=True)
    phases, checked, equal, problem = [], 0, 0, None
    limit = 1 + args.baseline_iterations + profile.max_iterations + args.iterations + 600
    planned_done = 0
    while True:
        step([])
        report = hook.last_report
        phases.append(report.phase)
        if report.phase == "planned":
            planned_done += 1
            plan = client.instructions() if client.plan_version == report.plan_version else None
            if plan is not None:
                checked += 1
                if wrapper.executed == [pt.Step.from_plan_step(x) for x in plan]:
                    equal += 1
                elif problem is None:
                    problem = wrapper.mismatch() or f"rank {rank}: order differs from the plan"
        # Every rank ran enough planned iterations (or the loop ran too long): stop together.
        done = torch.tensor([planned_done >= args.iterations or len(phases) >= limit],
                            dtype=torch.int64)
        dist.all_reduce(done, op=dist.ReduceOp.MIN)
        if done.item():
            break
    totals = torch.tensor([checked, equal, hook.metrics.mismatches], dtype=torch.int64)
    dist.all_reduce(totals)
    iterations = torch.tensor([hook.profiler.iterations], dtype=torch.int64)
    dist.all_reduce(iterations, op=dist.ReduceOp.MAX)
    gathered = [None] * world
    dist.all_gather_object(gathered, (phases, problem))
    out = None
    if rank == 0:
        # The coordinator's measured figures, once every rank's reports arrived.
        expected = sum(len(g[0]) for g in gathered)
        deadline = time.monotonic() + 60
        report = http(args.server, "GET", f"/v1/jobs/{job_id}/report")
        while report["reports"] < expected and time.monotonic() < deadline:
            time.sleep(0.1)
            report = http(args.server, "GET", f"/v1/jobs/{job_id}/report")
        state = http(args.server, "GET", f"/v1/jobs/{job_id}")
        counts = {p: sum(ph.count(p) for ph, _ in gathered) // world for p in pt.PHASES}
        measured = report["measured"]
        out = {"profiling_iterations": int(iterations.item()),
               "profiling_iterations_max": profile.max_iterations,
               "profiled_frequencies": len(profile.frequencies_mhz),
               "phases_per_rank": counts,
               "iterations_total": len(phases),
               "order_checked": bool(totals[0].item() > 0 and totals[1] == totals[0]),
               "mismatches": int(totals[2].item()),
               "plan_version": client.plan_version,
               "blocking_power": state.get("blocking_power"),
               "measured": measured,
               "saving_pct": measured.get("saving_pct"),
               "slowdown_pct": measured.get("slowdown_pct")}
        problems = [g[1] for g in gathered if g[1]]
        if problems:
            out["order_problem"] = problems[0]
    wrapper.unwrap()
    del hook, client
    return out


def main_worker(rank, args, world, store_path, result_path):
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    S = args.stages
    pp_group = dp_group = None
    for p in range(args.dp):  # every process creates every group, in the same order
        group = dist.new_group([p * S + s for s in range(S)])
        if p == rank // S:
            pp_group = group
    if args.dp > 1:
        for s in range(S):
            group = dist.new_group([p * S + s for p in range(args.dp)])
            if s == rank % S:
                dp_group = group
    w = Worker(rank, args, pp_group, dp_group)
    order = pt.schedule_from_torch(w.schedule)
    losses, baseline, tuned, notes = [], [], [], {}

    job = torch.zeros(1, dtype=torch.int64)
    if args.perseus and rank == 0:
        job[0] = create_job(args, order)
    dist.broadcast(job, src=0)
    job_id = int(job.item())

    # Baseline: every computation at the highest clock, after one unmeasured warm-up
    # iteration (first-touch allocations make it slower).
    counter = iter(range(10 ** 9))  # iteration numbers (the data of each)

    slow_iterations = args.straggler_iterations if args.straggler else 0

    def step(results):
        if results is not None and args.straggler:  # the k-th iteration of its kind: slow if k < N
            w.gpu.slow = 1.2 if w.pipeline == 1 and len(results) < slow_iterations else 1.0
        t, e, loss = w.timed_step(next(counter))
        if results is not None:
            results.append((t, e))
        losses.append(loss)

    if args.profile_in_job:
        out = profile_in_job(w, args, rank, world, job_id, order, step)
        if rank == 0:
            out.update({"schedule": args.schedule, "torch_class": type(w.schedule).__name__,
                        "stages": S, "microbatches": args.microbatches, "dp": args.dp,
                        "iterations": args.iterations, "time_scale": args.time_scale,
                        "loss_first": losses[0], "loss_last": losses[-1],
                        "job_id": job_id, "server": args.server, "gpud": args.gpud})
            with open(result_path, "w") as f:
                json.dump(out, f)
        dist.barrier()
        dist.destroy_process_group()
        return

    w.gpu.lock_sm_clock(w.clocks[0])
    step(None)
    if not args.alternate:
        for _ in range(args.iterations):
            step(baseline)

    checked = equal = 0
    mismatches = 0
    records = []  # with --perseus: per Perseus iteration, (plan version, time_s, energy_j, first)
    client = hook = None
    if args.perseus:
        client = perseus.Client(args.server, job_id=job_id, rank=rank, pp_rank=w.pp_rank,
                                dp_rank=w.pipeline, frequencies_mhz=w.clocks,
                                gpu_name=w.gpu.name,
                                poll_interval_s=0.1 if args.straggler else 0.5)
        rows = w.profile(profiled_kinds(order))
        gathered = [None] * world
        dist.all_gather_object(gathered, rows)
        notes["profiled_frequencies"] = len({r[2] for r in rows})
        if rank == 0:
            deadline = time.monotonic() + 120
            while http(args.server, "GET", f"/v1/jobs/{job_id}")["ranks_registered"] < world:
                if time.monotonic() > deadline:
                    raise RuntimeError("the ranks did not register with the coordinator")
                time.sleep(0.1)
            text = "stage,instruction,frequency,time,energy\n" + "".join(
                f"{s},{k},{f},{t!r},{e!r}\n" for r in range(S) for s, k, f, t, e in gathered[r])
            http(args.server, "PUT", f"/v1/jobs/{job_id}/profile", text, "text/csv")
        if not client.wait_for_plan(0, 600):
            raise RuntimeError("no plan from the coordinator")
        # This mode has its own baseline (all iterations at the highest clock, above).
        hook = pt.PerseusHook(client=client, set_frequency=w.set_clock, device=w.gpu,
                              strict=False, rank=w.pp_rank, warmup_iterations=0,
                              baseline_iterations=0)
        wrapper = pt.wrap_schedule(w.schedule, hook, check_order=True)

        def snapshot(c):  # (version, instructions) read consistently from client c
            while True:
                version, plan = c.plan_version, c.instructions()
                if c.plan_version == version:
                    return version, plan

        first_plan = snapshot(client)[1]  # the fastest plan (no straggler known yet)
        for _ in range(args.iterations):
            before = snapshot(client)
            if args.alternate:  # a baseline iteration: no hook, the highest clock
                wrapper.unwrap()
                hook.on_unplanned_work()  # the hook knows the clock it left
                step(baseline)
                wrapper = pt.wrap_schedule(w.schedule, hook, check_order=True)
            step(tuned)
            # The executed order against the plan this rank got from the coordinator: the
            # version the hook ran (the client may have fetched a newer one during the step).
            report = hook.last_report
            ran = report.plan_version if report is not None else -1
            plan = next((p for v, p in (before, snapshot(client)) if v == ran), None)
            planned = None if plan is None else [pt.Step.from_plan_step(s) for s in plan]
            checked += 1
            # Per iteration: the version the hook ran, its compute time, this rank's energy and
            # whether the plan it ran was the first (fastest) one.
            records.append((ran, report.time_s if report is not None else 0.0, w.last_energy_j,
                            plan == first_plan))
            if planned is None:
                notes.setdefault("order_problem", f"rank {rank} ran plan version {ran}, which "
                                                  "the client no longer holds")
            elif wrapper.executed == planned and wrapper.mismatch() is None:
                equal += 1
            elif "order_problem" not in notes:
                notes["order_problem"] = wrapper.mismatch() or next(
                    (f"rank {rank} computation {i}: ran {a}, planned {b}"
                     for i, (a, b) in enumerate(zip(wrapper.executed, planned)) if a != b),
                    f"rank {rank} ran {len(wrapper.executed)} computations, planned "
                    f"{len(planned)}")
    elif args.alternate:
        for _ in range(args.iterations):
            step(baseline)
    if hook is not None:
        mismatches = hook.metrics.mismatches
        notes["plan_version"] = hook.plan_version
    figures = torch.tensor([checked, equal, mismatches], dtype=torch.int64)
    dist.all_reduce(figures)
    versions = [None] * world
    dist.all_gather_object(versions, (notes.get("plan_version", 0), notes.get("order_problem"),
                                      records))
    if rank == 0:
        out = {"schedule": args.schedule, "torch_class": type(w.schedule).__name__,
               "stages": S, "model_stages": w.total, "microbatches": args.microbatches,
               "dp": args.dp, "iterations": args.iterations, "time_scale": args.time_scale,
               "alternate": args.alternate,
               "loss_first": losses[0], "loss_last": losses[-1],
               "baseline": {"time_s": statistics.median([t for t, _ in baseline]),
                            "energy_j": statistics.median([e for _, e in baseline]),
                            "per_iteration": baseline}}
        if args.perseus:
            out["perseus"] = {"time_s": statistics.median([t for t, _ in tuned]),
                              "energy_j": statistics.median([e for _, e in tuned]),
                              "per_iteration": tuned}
            out["saving_pct"] = 100.0 * (1 - out["perseus"]["energy_j"] /
                                         out["baseline"]["energy_j"])
            out["slowdown_pct"] = 100.0 * (out["perseus"]["time_s"] /
                                           out["baseline"]["time_s"] - 1)
            out["order_checked"] = bool(figures[0].item() == world * args.iterations
                                        and figures[1].item() == figures[0].item())
            out["mismatches"] = int(figures[2].item())
            out["plan_version"] = versions[0][0]
            # Per pipeline, per Perseus iteration: the oldest plan version its ranks ran.
            pipelines = [[versions[p * S + s][2] for s in range(S)] for p in range(args.dp)]
            out["plan_versions_by_pipeline"] = [
                [min(r[k][0] for r in ranks) for k in range(args.iterations)]
                for ranks in pipelines]
            # The last plan version of each pipeline's first rank (before: plan_versions_by_pipeline).
            out["last_plan_versions_by_pipeline"] = [versions[p * S][0] for p in range(args.dp)]
            problems = [v[1] for v in versions if v[1]]
            if problems:
                out["order_problem"] = problems[0]
            out["profiled_frequencies"] = notes["profiled_frequencies"]
            state = http(args.server, "GET", f"/v1/jobs/{job_id}")
            frontier = state.get("frontier", {})
            if frontier:  # the planner's own figures for the plan (T_min) against all-max
                # (the coordinator's are per pipeline)
                out["planned"] = {"time_s": frontier["t_min_s"],
                                  "energy_j": frontier["t_min_energy_j"] * args.dp,
                                  "all_max_time_s": frontier["all_max_time_s"],
                                  "all_max_energy_j": frontier["all_max_energy_j"] * args.dp,
                                  "saving_pct": 100.0 * (1 - frontier["t_min_energy_j"] /
                                                         frontier["all_max_energy_j"])}
            if args.straggler:
                straggler_summary(out, pipelines, slow_iterations, baseline, tuned,
                                  metrics_text(args.server), job_id)
        if args.perseus:
            out.update({"job_id": job_id, "server": args.server, "gpud": args.gpud})
        with open(result_path, "w") as f:
            json.dump(out, f)
    if args.trace:
        pathlib.Path(args.trace, f"rank{rank}.json").write_text(json.dumps(w.traces))
    del hook, client
    dist.barrier()
    dist.destroy_process_group()


def straggler_summary(out, pipelines, slow_iterations, baseline, tuned, metrics, job_id):
    """--straggler --perseus: when pipeline 0 moved off the fastest plan (detection) and back
    (recovery), and the energy per iteration over the whole run against the baseline (all-max
    with the same straggler: N slow iterations of pipeline 1, then N normal ones)."""
    versions = out["plan_versions_by_pipeline"][0]
    iterations = len(versions)
    detected = next((k for k in range(iterations) if versions[k] > versions[0]), None)
    recovered = None
    if detected is not None:
        for k in range(max(slow_iterations, detected + 1), iterations):
            # All of pipeline 0's ranks ran a version after the straggler's, and it was the
            # fastest plan again.
            if versions[k] > versions[detected] and all(r[k][3] for r in pipelines[0]):
                recovered = k
                break
    out["straggler_detected_after_iterations"] = detected
    out["straggler_recovered"] = recovered is not None
    out["straggler_recovered_after_iterations"] = (None if recovered is None
                                                   else recovered - slow_iterations)
    base_e = statistics.fmean(e for _, e in baseline)
    tuned_e = statistics.fmean(e for _, e in tuned)
    out["run_saving_pct"] = 100.0 * (1 - tuned_e / base_e)
    out["straggler"] = {
        "pipeline": 1, "slowdown": 1.2, "slow_iterations": slow_iterations,
        "baseline": {"time_s_per_iteration": statistics.fmean(t for t, _ in baseline),
                     "energy_j_per_iteration": base_e},
        "perseus": {"time_s_per_iteration": statistics.fmean(t for t, _ in tuned),
                    "energy_j_per_iteration": tuned_e},
        "per_iteration": [
            {"slow": k < slow_iterations,
             "plan_versions": [min(r[k][0] for r in ranks) for ranks in pipelines],
             "compute_time_s": [max(r[k][1] for r in ranks) for ranks in pipelines],
             "energy_j": [sum(r[k][2] for r in ranks) for ranks in pipelines],
             "time_s": tuned[k][0]}
            for k in range(iterations)]}
    for line in metrics.splitlines() if isinstance(metrics, str) else []:
        for name in ("detected", "recovered"):
            if line.startswith(f'perseus_stragglers_{name}_total{{job="{job_id}"}}'):
                out["straggler"][f"{name}_total"] = int(float(line.split()[-1]))


# ---- the launcher --------------------------------------------------------------

def sim_profile(path, scale, model_stages, out):
    """The GPT-3 profile for `model_stages` model stages (its first ones and its last, which
    has the head), every time and energy x `scale`, backward_input and backward_weight each
    half of the backward (as the planner derives them)."""
    lines = pathlib.Path(path).read_text().splitlines()
    header = lines[0].split(",")
    col = {k: header.index(k) for k in ("stage", "instruction", "frequency", "time", "energy")}
    source = list(range(model_stages - 1)) + [PROFILE_STAGES - 1]
    rows = {}
    for line in lines[1:]:
        f = line.split(",")
        rows.setdefault(int(f[col["stage"]]), []).append(
            (f[col["instruction"]], f[col["frequency"]], float(f[col["time"]]) * scale,
             float(f[col["energy"]]) * scale))
    text = ["stage,instruction,frequency,time,energy"]
    for stage, src in enumerate(source):
        for kind, mhz, t, e in rows[src]:
            text.append(f"{stage},{kind},{mhz},{t!r},{e!r}")
            if kind == "backward":
                for half in ("backward_input", "backward_weight"):
                    text.append(f"{stage},{half},{mhz},{t / 2!r},{e / 2!r}")
    pathlib.Path(out).write_text("\n".join(text) + "\n")


def run_processes(args, world, work, result_path):
    context = mp.start_processes(main_worker, args=(args, world, os.path.join(work, "store"),
                                                    result_path),
                                 nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + args.timeout
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                raise SystemExit(f"the {world} processes did not finish in {args.timeout} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedule", default="1F1B", choices=TORCH_SCHEDULES + BUILTIN_SCHEDULES,
                        help="a torch schedule (get_schedule_class name) or a planner schedule "
                             "(lower case) run from its CSV")
    parser.add_argument("--stages", type=int, default=4, help="pipeline ranks S")
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--dp", type=int, default=1, help="pipelines (data parallelism)")
    parser.add_argument("--perseus", action="store_true", help="plan and train with Perseus")
    parser.add_argument("--straggler", action="store_true",
                        help="with --dp 2: pipeline 1 runs 20%% slower for --straggler-iterations "
                             "iterations, then as many normal ones (baseline and Perseus alike); "
                             "the coordinator detects it from the iteration reports")
    parser.add_argument("--straggler-iterations", type=int, default=8, metavar="N",
                        help="with --straggler: slow iterations (then N normal; the run is 2N "
                             "iterations each way, --iterations is ignored)")
    parser.add_argument("--alternate", action="store_true",
                        help="with --perseus: alternate baseline and Perseus iterations after "
                             "planning (the machine's load drift then hits both alike) instead "
                             "of all baseline iterations first")
    parser.add_argument("--profile-in-job", action="store_true",
                        help="with --perseus: the job starts without a profile; the ranks profile "
                             "themselves in the training loop, then follow the plan (see "
                             "profile_in_job); --iterations planned iterations")
    parser.add_argument("--profile-clocks", type=int, default=0, metavar="N",
                        help="with --profile-in-job: profile about N of the supported clocks "
                             "(every k-th; default: all)")
    parser.add_argument("--baseline-iterations", type=int, default=3, metavar="N",
                        help="with --profile-in-job: iterations at the highest clock the hook "
                             "reports as the measured baseline (after 1 warm-up)")
    parser.add_argument("--server", help="a running `perseus serve` (default: start one)")
    parser.add_argument("--gpud", metavar="SOCKET",
                        help="set clocks through `perseus gpud` at this socket (each rank its "
                             "GPU rank %% the daemon's GPUs)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="simulated computation times are the GPT-3 profile's times this "
                             "(1: 50 ms forwards; smaller runs faster, but torch's own few ms per "
                             "computation, which the plan does not see, then weigh more)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the processes")
    parser.add_argument("--trace", metavar="DIR",
                        help="write every rank's computations (start, torch done, end, clock) "
                             "per iteration to DIR/rankR.json")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = parser.parse_args()
    per_rank = stages_per_rank(args.schedule)
    if args.stages < 2 or args.stages * per_rank > PROFILE_STAGES:
        parser.error(f"--stages must be 2..{PROFILE_STAGES // per_rank} for {args.schedule} "
                     f"({per_rank} model stage(s) per rank; the profile has {PROFILE_STAGES})")
    if args.straggler and args.dp < 2:
        parser.error("--straggler needs --dp 2 or more")
    if args.straggler:
        if args.straggler_iterations < 1:
            parser.error("--straggler-iterations must be positive")
        args.iterations = 2 * args.straggler_iterations
    if args.iterations < 1 or args.microbatches < 1:
        parser.error("--iterations and --microbatches must be positive")
    if args.profile_in_job and (not args.perseus or args.straggler or args.alternate):
        parser.error("--profile-in-job needs --perseus, without --straggler or --alternate")
    if args.profile_clocks < 0 or args.baseline_iterations < 0:
        parser.error("--profile-clocks and --baseline-iterations must be >= 0")

    work = tempfile.mkdtemp(prefix="perseus-example-")
    if args.trace:
        os.makedirs(args.trace, exist_ok=True)
    args.sim_profile = os.path.join(work, "profile.csv")
    sim_profile(PROFILE, args.time_scale, args.stages * per_rank, args.sim_profile)
    args.csv = None
    if args.schedule in BUILTIN_SCHEDULES:
        args.csv = os.path.join(work, "schedule.csv")
        builtin_csv(args.schedule, args.stages, args.microbatches, args.csv)
    server = None
    if args.perseus and not args.server:
        server = subprocess.Popen([PERSEUS, "serve", "--listen", "127.0.0.1:0", "--db",
                                   os.path.join(work, "perseus.db")],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = server.stdout.readline().strip()
        if "listening on" not in line:
            raise SystemExit(f"perseus serve did not start (exit status {server.wait()})")
        args.server = line.split(" ")[-1]
    world = args.stages * args.dp
    result_path = os.path.join(work, "result.json")
    start = time.monotonic()
    try:
        run_processes(args, world, work, result_path)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    result = json.loads(pathlib.Path(result_path).read_text())
    result["wall_s"] = round(time.monotonic() - start, 1)
    if not args.json:
        print(f"{args.schedule}: {world} processes, {args.iterations} iterations each way",
              file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
