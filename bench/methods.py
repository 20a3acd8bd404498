"""Step time of every weighting method relative to LS, on a synthetic shared encoder (CPU).

    python bench/methods.py                       # K = 11 and 40, all 22 methods
    python bench/methods.py --tasks 11 --methods ls ntkmtl ntkmtl_sr --repeats 5

One step = forward, ``method.backward``, ``optimizer.step()`` (and, for FAMO, the no-grad forward
its ``update`` needs), exactly as the trainer runs it. Methods are timed round-robin, one step each
per round, and each method's median over rounds is divided by LS's median: ratios from the same
run. On the CPU the clock is this process's CPU time (``time.process_time``, one intra-op thread
by default), so other processes sharing the cores do not inflate a method's time; use
``--clock wall`` for wall time (always used on CUDA, after synchronising). NTKMTL is also compared with a reference-style loop
(K ``backward(retain_graph=True)`` passes, each parameter's ``.grad`` flattened and copied into a
P × K buffer and zeroed, weights from the Gramian, the update copied back), as in the NTKMTL
repository's ``NTKMTL.get_weighted_loss``. The model hands each head its own view of the
representation (see ``Encoder``); NTKMTL-SR is also timed on the same model returning one shared z.
With FAMO in the list, the time of one no-grad forward
is printed too: FAMO's ``update`` needs one per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ntkmtl.methods import METHODS, chunk_slices, get_method  # noqa: E402


class Encoder(torch.nn.Module):
    """MLP 256 → 1024 → 640 → 256 (≈ 1.08 M parameters) and K linear heads 256 → 1 (as QM9, CelebA).

    With ``views`` each head reads its own view ``z.view_as(z)`` of the representation and the
    model returns the K views (free, and it lets NTKMTL-SR get every task's representation
    gradient in one backward); otherwise it returns the one shared z.
    """

    def __init__(self, n_tasks: int, views: bool = True):
        super().__init__()
        self.views = views
        self.shared = torch.nn.Sequential(
            torch.nn.Linear(256, 1024),
            torch.nn.ReLU(),
            torch.nn.Linear(1024, 640),
            torch.nn.ReLU(),
            torch.nn.Linear(640, 256),
            torch.nn.ReLU(),
        )
        self.heads = torch.nn.ModuleList(torch.nn.Linear(256, 1) for _ in range(n_tasks))

    def forward(self, x):
        z = self.shared(x)
        inputs = [z.view_as(z) for _ in self.heads] if self.views else [z] * len(self.heads)
        out = torch.cat([head(v) for head, v in zip(self.heads, inputs)], dim=1)
        return out, (inputs if self.views else z)


def per_sample_losses(model, x, y):
    out, z = model(x)
    return (out - y) ** 2, z


def chunk_means(per_sample, n_chunks):
    if n_chunks == 1:
        return per_sample.mean(0)
    return torch.stack([per_sample[s].mean(0) for s in chunk_slices(len(per_sample), n_chunks)])


def reference_ntkmtl_backward(losses, shared, ntk_exp=0.5, max_norm=1.0):
    """The reference repository's NTKMTL step (n = 1), for comparison only."""
    n_tasks = len(losses)
    sizes = [p.numel() for p in shared]
    grads = torch.zeros(sum(sizes), n_tasks, device=losses.device)
    for i in range(n_tasks):
        losses[i].backward(retain_graph=i < n_tasks - 1)
        start = 0
        for p, size in zip(shared, sizes):
            if p.grad is not None:
                grads[start : start + size, i].copy_(p.grad.detach().clone().view(-1))
            start += size
        for p in shared:
            p.grad = None
    gtg = grads.t().mm(grads)
    weights = (torch.trace(gtg) / gtg.diagonal()) ** ntk_exp
    update = (grads @ weights) * n_tasks
    start = 0
    for p, size in zip(shared, sizes):
        p.grad = update[start : start + size].view_as(p).clone()
        start += size
    torch.nn.utils.clip_grad_norm_(shared, max_norm)


FORWARD = "forward only (no grad)"
SR_SHARED = "ntkmtl_sr (one shared z)"
REFERENCE = "ntkmtl (reference loop)"


class Runner:
    """One method (or the reference loop) with its own model copy and optimizer."""

    def __init__(self, name, n_tasks, model_state, x, y, device):
        self.name = name
        self.model = Encoder(n_tasks, views=name != SR_SHARED).to(device)
        self.model.load_state_dict(model_state)
        method = "ntkmtl_sr" if name == SR_SHARED else name
        self.method = get_method(method, n_tasks, device=device) if method in METHODS else None
        extra = self.method.parameters() if self.method is not None else []
        self.optimizer = torch.optim.Adam(list(self.model.parameters()) + list(extra), lr=1e-4)
        self.shared = list(self.model.shared.parameters())
        self.heads = list(self.model.heads.parameters())
        self.x, self.y = x, y

    def step(self):
        if self.name == FORWARD:
            with torch.no_grad():
                per_sample_losses(self.model, self.x, self.y)
            return
        self.optimizer.zero_grad(set_to_none=True)
        n_chunks = self.method.requirements.max_chunks if self.method is not None else 1
        per_sample, z = per_sample_losses(self.model, self.x, self.y)
        losses = chunk_means(per_sample, n_chunks)
        if self.method is None:
            reference_ntkmtl_backward(losses, self.shared)
        else:
            self.method.backward(losses, self.shared, self.heads, representation=z)
        self.optimizer.step()
        if self.method is not None and self.method.requirements.losses_after_step:
            with torch.no_grad():
                self.method.update(per_sample_losses(self.model, self.x, self.y)[0].mean(0))


def _needs(cls) -> str:
    """The table's 'needs' column: what the trainer computes for the method."""
    r = cls.requires
    return "gradients" if r.task_gradients else "representation" if r.representation else "losses"


def bench(n_tasks, names, repeats, warmup, batch, device, clock):
    torch.manual_seed(0)
    x = torch.randn(batch, 256, device=device)
    y = torch.randn(batch, n_tasks, device=device) * torch.logspace(-1, 1, n_tasks, device=device)
    state = Encoder(n_tasks).to(device).state_dict()
    runners = [Runner(name, n_tasks, state, x, y, device) for name in names]
    times = {r.name: [] for r in runners}
    for round_ in range(warmup + repeats):
        for runner in runners:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = clock()
            runner.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_ >= warmup:
                times[runner.name].append(clock() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="+", default=[11, 40], help="numbers of tasks K")
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS), help="methods to time (ls is always included)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument(
        "--clock",
        choices=("process", "wall"),
        default="process",
        help="CPU time of this process (default on CPU) or wall time (always on CUDA)",
    )
    parser.add_argument("--batch", type=int, default=128, help="batch size")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; valid methods: {', '.join(sorted(METHODS))}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    use_wall = args.clock == "wall" or device.type == "cuda"
    clock = time.perf_counter if use_wall else time.process_time
    names = ["ls"] + [m for m in args.methods if m != "ls"]
    if "ntkmtl" in names:
        names.insert(names.index("ntkmtl") + 1, REFERENCE)
    if "ntkmtl_sr" in names:
        names.insert(names.index("ntkmtl_sr") + 1, SR_SHARED)
    if "famo" in names:
        names.append(FORWARD)  # FAMO's update needs one such forward per step
    params = sum(p.numel() for p in Encoder(1).shared.parameters())
    print(
        f"shared encoder: {params:,} parameters; batch {args.batch}; device {device}; "
        f"threads {torch.get_num_threads()}; {'wall' if use_wall else 'process CPU'} time, "
        f"median of {args.repeats} rounds"
    )
    results = {k: bench(k, names, args.repeats, args.warmup, args.batch, device, clock) for k in args.tasks}
    header = "| method | needs | " + " | ".join(f"K={k} ms | K={k} ×LS" for k in args.tasks) + " |"
    print(header)
    print("|" + "---|" * (2 + 2 * len(args.tasks)))
    for name in names:
        needs = {REFERENCE: "gradients", SR_SHARED: "representation"}.get(
            name, _needs(METHODS[name]) if name in METHODS else "-"
        )
        cells = []
        for k in args.tasks:
            t = results[k][name]
            cells.append(f"{t * 1e3:.1f} | {t / results[k]['ls']:.2f}")
        print(f"| {name} | {needs} | " + " | ".join(cells) + " |")
    if "ntkmtl" in names:
        print()
        for k in args.tasks:
            ratio = results[k]["ntkmtl"] / results[k][REFERENCE]
            print(f"K={k}: ntkmtl / reference loop = {ratio:.2f}")


if __name__ == "__main__":
    main()
