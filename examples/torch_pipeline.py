#!/usr/bin/env python3
"""A small GPT trained with pipeline parallelism, driven by Perseus.

One process per pipeline stage (and per pipeline with --dp), torch.distributed
with the gloo backend on CPU, a hand-written 1F1B executor, real forward,
backward and optimizer steps on synthetic tokens. Each process owns a
simulated GPU (perseus.SimBackend) that stretches every computation to the
profiled time for its SM clock and accounts its energy; waiting draws the
blocking power.

With --perseus it starts (or connects to, --server) `perseus serve`, profiles
every stage online on its simulated GPU, uploads the measurements, waits for
the plan, and trains with it: a PerseusHook sets each computation's planned
clock. It first trains the same number of iterations at the highest clock
(the baseline). The last line printed is one JSON object:
{stages, microbatches, iterations, loss_first, loss_last, baseline: {time_s,
energy_j}, perseus: {time_s, energy_j}, saving_pct, slowdown_pct}
(time and energy per iteration, energy over all simulated GPUs).

With --dp 2 --straggler, pipeline 1 runs 20% slower after the baseline; it is
reported to the coordinator, and pipeline 0 moves to a slower, cheaper plan.

    python3 examples/torch_pipeline.py --stages 4 --microbatches 8 --iterations 6 --perseus --json
"""

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
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

import perseus  # noqa: E402
import perseus.torch  # noqa: E402

VOCAB, SEQ, DIM, BATCH = 32, 16, 32, 4
PROFILE = REPO / "data" / "profiles" / "gpt3-175b+a100_sxm_bf16.csv"
BLOCKING_POWER_W = 83.64  # the paper's A100 figure, per GPU


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


class Stage(nn.Module):
    """Stage s of S: the first embeds tokens, the last predicts the next token."""

    def __init__(self, stage, stages):
        super().__init__()
        self.first, self.last = stage == 0, stage == stages - 1
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


def batch(iteration, microbatch):
    """Synthetic sequences x, x+k, x+2k, ... (mod VOCAB): learnable next tokens."""
    g = torch.Generator().manual_seed(1000 * iteration + microbatch)
    start = torch.randint(0, VOCAB, (BATCH, 1), generator=g)
    step = torch.randint(1, 4, (BATCH, 1), generator=g)
    seq = (start + step * torch.arange(SEQ + 1)) % VOCAB
    return seq[:, :-1], seq[:, 1:]


def one_f_one_b(stage, stages, microbatches):
    """This stage's 1F1B order (DeepSpeed's, as the planner's 1f1b schedule)."""
    warmup = min(stages - stage - 1, microbatches)
    order = [("forward", i) for i in range(warmup)]
    for i in range(microbatches - warmup):
        order += [("forward", warmup + i), ("backward", i)]
    order += [("backward", i) for i in range(microbatches - warmup, microbatches)]
    return order


# ---- one process ---------------------------------------------------------------

class Worker:
    def __init__(self, rank, args, world):
        self.rank, self.args = rank, args
        self.S, self.M = args.stages, args.microbatches
        self.stage, self.pipeline = rank % self.S, rank // self.S
        torch.manual_seed(self.stage)  # every pipeline starts from the same weights
        self.model = Stage(self.stage, self.S)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=3e-3)
        sim = perseus.SimBackend(args.sim_profile, blocking_power_w=BLOCKING_POWER_W,
                                 real_time=True)
        self.gpu = sim[self.stage]
        self.sim = sim  # keeps the GPU alive
        self.clocks = self.gpu.supported_sm_clocks()
        self.slow = 1.0  # >1: this pipeline straggles
        self.dp_group = None
        if args.dp > 1:  # gradient all-reduce among the copies of each stage
            for s in range(self.S):
                group = dist.new_group([p * self.S + s for p in range(args.dp)])
                if s == self.stage:
                    self.dp_group = group
        self.compute_s = 0.0

    def run_on_gpu(self, kind):
        """The simulated GPU takes the profiled time of this computation at its clock."""
        t = self.gpu.run(kind)
        if self.slow > 1.0:
            time.sleep(t * (self.slow - 1.0))
            t *= self.slow
        self.compute_s += t

    def iteration(self, it, hook=None):
        """One 1F1B training iteration; returns (loss or None, busy seconds)."""
        self.compute_s = 0.0
        self.optimizer.zero_grad()
        up, down = self.rank - 1, self.rank + 1
        inputs, outputs, pending, losses = {}, {}, [], []
        for kind, mb in one_f_one_b(self.stage, self.S, self.M):
            if hook:
                hook.on_instruction_begin(kind, mb)
            if kind == "forward":
                tokens, targets = batch(it, mb)
                if self.stage == 0:
                    x = tokens
                else:
                    x = torch.empty(BATCH, SEQ, DIM)
                    dist.recv(x, src=up, tag=2 * mb)
                    x.requires_grad_()
                y = self.model(x)
                if self.stage == self.S - 1:
                    y = nn.functional.cross_entropy(y.reshape(-1, VOCAB), targets.reshape(-1))
                    losses.append(y.item())
                    y = y / self.M
                inputs[mb], outputs[mb] = x, y
                self.run_on_gpu(kind)  # the result leaves once the GPU is done with it
                if self.stage < self.S - 1:
                    pending.append(dist.isend(y.detach(), dst=down, tag=2 * mb))
            else:
                y = outputs.pop(mb)
                if self.stage == self.S - 1:
                    y.backward()
                else:
                    grad = torch.empty_like(y)
                    dist.recv(grad, src=down, tag=2 * mb + 1)
                    y.backward(grad)
                x = inputs.pop(mb)
                self.run_on_gpu(kind)
                if self.stage > 0:
                    pending.append(dist.isend(x.grad, dst=up, tag=2 * mb + 1))
            if hook:
                hook.on_instruction_end(kind, mb)
        for work in pending:
            work.wait()
        if self.dp_group is not None:
            for p in self.model.parameters():
                dist.all_reduce(p.grad, group=self.dp_group)
                p.grad /= self.args.dp
        self.optimizer.step()
        return (sum(losses) / len(losses) if losses else None), self.compute_s

    def timed_iteration(self, it, hook=None):
        """Runs one iteration between barriers; returns (time_s, energy_j, loss) for all ranks."""
        dist.barrier()
        start, energy0 = time.monotonic(), self.gpu.energy_mj()
        if hook:
            hook.on_step_begin()
        loss, busy = self.iteration(it, hook)
        elapsed = time.monotonic() - start
        figures = torch.tensor([elapsed], dtype=torch.float64)
        dist.all_reduce(figures, op=dist.ReduceOp.MAX)
        iteration_s = figures.item()
        # Energy: the computations (simulated GPU) plus blocking power while waiting.
        energy = (self.gpu.energy_mj() - energy0) / 1000.0 + \
            BLOCKING_POWER_W * max(0.0, iteration_s - busy)
        if hook:
            hook.on_step_end(energy_j=energy)
        total = torch.tensor([energy, loss if loss is not None else 0.0,
                              1.0 if loss is not None else 0.0], dtype=torch.float64)
        dist.all_reduce(total)
        mean_loss = total[1].item() / total[2].item()
        return iteration_s, total[0].item(), mean_loss

    def profile(self):
        """Online profiling of this stage on its simulated GPU, highest clock first."""
        sweep = perseus.FrequencySweep(self.clocks, ["forward", "backward"], warmup=0,
                                       iterations=2)
        x = torch.randint(0, VOCAB, (BATCH, SEQ)) if self.stage == 0 else \
            torch.randn(BATCH, SEQ, DIM, requires_grad=True)
        while not sweep.done:
            self.gpu.lock_sm_clock(sweep.frequency)
            y = self.model(x)
            with perseus.measure(self.gpu) as m:
                self.gpu.run("forward")
            sweep.record("forward", m.time_s, m.energy_j)
            y.sum().backward()
            with perseus.measure(self.gpu) as m:
                self.gpu.run("backward")
            sweep.record("backward", m.time_s, m.energy_j)
            sweep.end_iteration()
        self.gpu.reset_sm_clock()
        self.model.zero_grad()
        return [{"instruction": r.kind, "frequency_mhz": r.frequency_mhz, "time_s": r.time_s,
                 "energy_j": r.energy_j} for r in sweep.rows], sweep.stopped_early_at


def http(base, method, path, body=None, content_type="application/json"):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def main_worker(rank, args, world, port, result_path):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    w = Worker(rank, args, world)
    losses, baseline, tuned, notes = [], [], [], {}

    # Baseline: every computation at the highest clock, after one unmeasured
    # warm-up iteration (first-touch allocations make it slower).
    w.gpu.lock_sm_clock(w.clocks[0])
    for it in range(args.iterations + 1):
        t, e, loss = w.timed_iteration(it)
        if it > 0:
            baseline.append((t, e))
        losses.append(loss)
    w.gpu.reset_sm_clock()

    client = hook = None
    if args.perseus:
        client = perseus.Client(args.server, job_id=args.job, rank=rank, pp_rank=w.stage,
                                dp_rank=w.pipeline, frequencies_mhz=w.clocks,
                                gpu_name=w.gpu.name, poll_interval_s=0.5)
        measurements, stopped = w.profile()
        if w.pipeline == 0:  # one copy of each stage is enough
            http(args.server, "PUT", f"/v1/jobs/{args.job}/profile",
                 {"rank": rank, "measurements": measurements})
        notes["profiled_frequencies"] = len(measurements) // 2
        if not client.wait_for_plan(0, 600):
            raise RuntimeError("no plan from the coordinator")
        hook = perseus.torch.PerseusHook(client=client, set_frequency=w.gpu.lock_sm_clock,
                                         rank=rank)
        if args.straggler and args.dp > 1:
            if w.pipeline == 1:
                w.slow = 1.2
            if rank == 0:
                http(args.server, "POST", f"/v1/jobs/{args.job}/stragglers",
                     {"pipeline": 1, "slowdown": 1.2})
            dist.barrier()
            client.end_iteration(-1, 0.0, 0.0)  # wake the refresher: fetch the new version now
            if w.pipeline == 0:
                client.wait_for_plan(1, 60)
        for it in range(args.iterations):
            t, e, loss = w.timed_iteration(args.iterations + 1 + it, hook)
            tuned.append((t, e))
            losses.append(loss)
        notes["plan_version"] = hook.plan_version
        notes["target_time_s"] = client.target_time_s
    versions = torch.tensor([notes.get("plan_version", 0)], dtype=torch.float64)
    gathered = [torch.zeros(1, dtype=torch.float64) for _ in range(world)]
    dist.all_gather(gathered, versions)
    if rank == 0:
        mean = lambda xs, k: sum(x[k] for x in xs) / len(xs)  # noqa: E731
        out = {"stages": args.stages, "microbatches": args.microbatches, "dp": args.dp,
               "iterations": args.iterations, "loss_first": losses[0], "loss_last": losses[-1],
               "baseline": {"time_s": mean(baseline, 0), "energy_j": mean(baseline, 1)}}
        if args.perseus:
            out["perseus"] = {"time_s": mean(tuned, 0), "energy_j": mean(tuned, 1)}
            out["saving_pct"] = 100.0 * (1 - out["perseus"]["energy_j"] / out["baseline"]["energy_j"])
            out["slowdown_pct"] = 100.0 * (out["perseus"]["time_s"] / out["baseline"]["time_s"] - 1)
            out["profiled_frequencies_stage0"] = notes["profiled_frequencies"]
            out["plan_versions_by_pipeline"] = [int(gathered[p * args.stages].item())
                                                for p in range(args.dp)]
            if args.straggler:
                # The baseline ran without the straggler: compare times with that in mind.
                out["straggler"] = {"pipeline": 1, "slowdown": 1.2}
        with open(result_path, "w") as f:
            json.dump(out, f)
    del hook, client
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scaled_profile(path, scale, out):
    """The profile with every time multiplied by `scale` (energy too: same power)."""
    lines = pathlib.Path(path).read_text().splitlines()
    header = lines[0].split(",")
    t, e = header.index("time"), header.index("energy")
    rows = [lines[0]]
    for line in lines[1:]:
        f = line.split(",")
        f[t], f[e] = repr(float(f[t]) * scale), repr(float(f[e]) * scale)
        rows.append(",".join(f))
    pathlib.Path(out).write_text("\n".join(rows) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--dp", type=int, default=1, help="pipelines (data parallelism)")
    parser.add_argument("--perseus", action="store_true", help="plan and train with Perseus")
    parser.add_argument("--straggler", action="store_true",
                        help="with --dp 2: pipeline 1 runs 20%% slower after the baseline")
    parser.add_argument("--server", help="a running `perseus serve` (default: start one)")
    parser.add_argument("--time-scale", type=float, default=0.25,
                        help="simulated computation times are the GPT-3 profile's times this")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = parser.parse_args()
    if args.stages < 2 or args.stages > 8:
        parser.error("--stages must be 2..8 (the profile has 8 stages)")
    if args.straggler and args.dp < 2:
        parser.error("--straggler needs --dp 2 or more")
    if args.iterations < 1 or args.microbatches < 1:
        parser.error("--iterations and --microbatches must be positive")

    work = tempfile.mkdtemp(prefix="perseus-example-")
    args.sim_profile = os.path.join(work, "profile.csv")
    scaled_profile(PROFILE, args.time_scale, args.sim_profile)
    server = None
    if args.perseus:
        if not args.server:
            binary = REPO / "build" / "bin" / "perseus"
            server = subprocess.Popen([str(binary), "serve", "--listen", "127.0.0.1:0", "--db",
                                       os.path.join(work, "perseus.db")],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            args.server = server.stdout.readline().strip().split(" ")[-1]
        job = http(args.server, "POST", "/v1/jobs",
                   {"name": "torch_pipeline example", "schedule": "1f1b", "stages": args.stages,
                    "microbatches": args.microbatches, "dp": args.dp,
                    "blocking_power_w": BLOCKING_POWER_W})
        args.job = job["job_id"]
    world = args.stages * args.dp
    result_path = os.path.join(work, "result.json")
    try:
        mp.spawn(main_worker, args=(args, world, free_port(), result_path), nprocs=world)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    result = json.loads(pathlib.Path(result_path).read_text())
    if not args.json:
        print(f"{world} processes, {args.iterations} iterations each way", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
