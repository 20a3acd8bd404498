"""Per-task gradients, Gramians and representation gradients: computed here once for all methods.

Gradient methods all start from G = [g_1 … g_K]ᵀ (K × P), the per-task gradients of the shared
parameters, and most only need the K × K Gramian G Gᵀ. Nothing here allocates more than K × P
floats (the reference code's P × K × K buffer is exactly what this module avoids); the batched
form holds the K × P result of its one backward and G at once (2 K × P).

How G is obtained is the task-gradient mode, ``loop`` (K backward passes, the reference's way) or
``batched`` (one vectorised backward); the trainer sets it per trial from ``train.task_gradients``
with ``task_gradient_mode(...)``, and every caller of ``task_gradients`` follows it. Both give
the same G (to float rounding); the mode is a speed choice, never part of a trial's identity.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator, Sequence, cast

import torch

TASK_GRADIENT_MODES = ("loop", "batched")
# ``train.task_gradients: auto`` per device type. CPU: the loop (the batched backward measured
# slower there, docs/PERFORMANCE.md). CUDA: the loop too until bench/gpu.py has measured both on a GPU.
DEFAULT_TASK_GRADIENTS = {"cpu": "loop", "cuda": "loop"}
_MODE: ContextVar[str] = ContextVar("task_gradient_mode", default="loop")


CHUNK_LAYOUTS = ("torch_chunk", "balanced")


def chunk_slices(batch_size: int, n_chunks: int, layout: str = "torch_chunk") -> list[slice]:
    """Contiguous slices of a batch: the chunks NTKMTL-SR (and NTKMTL with n > 1) split it into.

    - ``"torch_chunk"`` (the reference's ``torch.chunk(losses, n)``): chunks of ⌈B/n⌉ samples and
      a smaller last one, so there may be FEWER than n chunks (B = 10, n = 4: [3, 3, 3, 1];
      B = 9: three chunks [3, 3, 3]).
    - ``"balanced"``: exactly min(B, n) chunks whose sizes differ by at most one (B = 10, n = 4:
      [3, 3, 2, 2]), so every chunk's loss averages about as many samples.

    With fewer samples than chunks, each sample is its own chunk (no empty chunk, no NaN loss).
    """
    if batch_size < 1 or n_chunks < 1:
        raise ValueError(f"chunk_slices: batch_size={batch_size} and n_chunks={n_chunks} must be >= 1")
    if layout not in CHUNK_LAYOUTS:
        raise ValueError(f"chunk_slices: layout={layout!r} is not valid; valid: {', '.join(CHUNK_LAYOUTS)}")
    if layout == "torch_chunk":
        size = -(-batch_size // n_chunks)
        return [slice(start, min(start + size, batch_size)) for start in range(0, batch_size, size)]
    n = min(batch_size, n_chunks)
    base, extra = divmod(batch_size, n)
    slices, start = [], 0
    for j in range(n):
        stop = start + base + (1 if j < extra else 0)
        slices.append(slice(start, stop))
        start = stop
    return slices


def flat_size(parameters: Sequence[torch.Tensor]) -> int:
    return sum(p.numel() for p in parameters)


@contextlib.contextmanager
def task_gradient_mode(mode: str) -> Iterator[None]:
    """Within this block ``task_gradients`` uses ``mode`` (``loop`` or ``batched``)."""
    if mode not in TASK_GRADIENT_MODES:
        raise ValueError(f"task_gradients={mode!r} is not valid; valid: {', '.join(TASK_GRADIENT_MODES)}")
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


def _gradient_dtype(losses: torch.Tensor, shared: Sequence[torch.Tensor]) -> torch.dtype:
    """G's dtype: at least the parameters' (fp32 master weights under mixed precision)."""
    dtype = losses.dtype
    for p in shared:
        dtype = torch.promote_types(dtype, p.dtype)
    return dtype


def task_gradients(losses: torch.Tensor, shared: Sequence[torch.Tensor], retain_graph: bool = False) -> torch.Tensor:
    """G (K × P): row k is ∂L_k/∂θ for the shared parameters θ, flattened in parameter order.

    One backward pass per task; the graph is kept until the last one unless ``retain_graph``.
    A parameter a task does not reach contributes zeros. In ``task_gradient_mode("batched")``
    this is ``batched_task_gradients``.
    """
    if _MODE.get() == "batched":
        return batched_task_gradients(losses, shared, retain_graph)
    losses = losses.reshape(-1)
    n_tasks = losses.numel()
    grads = torch.empty(n_tasks, flat_size(shared), dtype=_gradient_dtype(losses, shared), device=losses.device)
    for k in range(n_tasks):
        keep = retain_graph or k < n_tasks - 1
        if not losses[k].requires_grad:
            grads[k].zero_()
            continue
        parts = torch.autograd.grad(losses[k], shared, retain_graph=keep, allow_unused=True)
        offset = 0
        for p, g in zip(shared, parts):
            row = grads[k, offset : offset + p.numel()]
            if g is None:
                row.zero_()
            else:
                row.copy_(g.reshape(-1))
            offset += p.numel()
    return grads


def batched_task_gradients(
    losses: torch.Tensor, shared: Sequence[torch.Tensor], retain_graph: bool = False
) -> torch.Tensor:
    """G (K × P) as ``task_gradients``, from ONE vectorised backward pass.

    ``autograd.grad`` with the K unit vectors as batched ``grad_outputs`` (``is_grads_batched``:
    the backward graph runs once under vmap); the graph is kept only if ``retain_graph``. An op
    without a vmap batching rule falls back to a loop inside torch (slower, same result).
    """
    losses = losses.reshape(-1)
    n_tasks = losses.numel()
    grads = torch.zeros(n_tasks, flat_size(shared), dtype=_gradient_dtype(losses, shared), device=losses.device)
    if not losses.requires_grad:
        return grads
    unit_vectors = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
    parts = torch.autograd.grad(
        losses, shared, grad_outputs=unit_vectors, retain_graph=retain_graph, allow_unused=True, is_grads_batched=True
    )
    offset = 0
    for p, g in zip(shared, parts):
        if g is not None:
            grads[:, offset : offset + p.numel()].copy_(g.reshape(n_tasks, -1))
        offset += p.numel()
    return grads


def gramian(grads: torch.Tensor) -> torch.Tensor:
    """The K × K Gramian G Gᵀ; its diagonal holds the squared gradient norms ‖g_k‖².

    Always in G's dtype (fp32 under mixed precision), even when called inside an autocast region.
    """
    kind = grads.device.type
    with torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") else contextlib.nullcontext():
        return grads @ grads.T


def write_flat_gradient(direction: torch.Tensor, parameters: Sequence[torch.Tensor]) -> None:
    """Set ``p.grad`` of each parameter to its slice of the flat vector ``direction``."""
    offset = 0
    for p in parameters:
        n = p.numel()
        p.grad = direction[offset : offset + n].view_as(p).to(p.dtype)  # a view: no copy
        offset += n
    if offset != direction.numel():
        raise ValueError(f"gradient of size {direction.numel()} for parameters of total size {offset}")


def backward_heads(objective: torch.Tensor, heads: Sequence[torch.Tensor]) -> None:
    """Accumulate ∂objective/∂head into each head's ``.grad`` (call ``optimizer.zero_grad()`` first)."""
    torch.autograd.backward(objective, inputs=list(heads))


def clip_shared_gradient(shared: Sequence[torch.Tensor], max_norm: float) -> float:
    """Clip the shared parameters' gradient to ``max_norm``; return the norm before clipping."""
    with_grad = [p for p in shared if p.grad is not None]
    if not with_grad:
        return 0.0
    return float(torch.nn.utils.clip_grad_norm_(with_grad, max_norm))


def representation_chunk_norms(
    losses: torch.Tensor, representation: torch.Tensor | Sequence[torch.Tensor], slices: Sequence[slice]
) -> torch.Tensor:
    """λ (n × K): λ[j, k] = ‖∂L_kj/∂z‖², the squared gradient of chunk j's task-k loss.

    ``losses`` is [n, K] over the n row ranges ``slices`` of z; chunk j's loss depends only on its
    own rows of z, so per-row squared gradient norms summed over a chunk's rows give its λ.

    ``representation`` is either
    - one tensor z with B rows shared by all heads: one backward per task (K passes through the
      heads; with K separate heads each pass also visits the other K − 1 heads, so K² head
      backward steps), or
    - a list of K distinct tensors z_k where z_k feeds task k's loss only: MTAN's attended
      features, or per-head views ``z.view_as(z)`` that a model can hand each head at no cost.
      Then ONE backward of Σ L gives every ∂L_k/∂z_k at once, since nothing else reaches z_k.
      The same tensor repeated K times (the reference's ``[z] * K``) counts as one shared z.
    """
    n, n_tasks = losses.shape
    per_task = isinstance(representation, (list, tuple))
    zs = list(representation) if isinstance(representation, (list, tuple)) else [cast(torch.Tensor, representation)]
    if per_task and len(zs) != n_tasks:
        raise ValueError(f"{len(zs)} representations for {n_tasks} tasks")
    if per_task and all(z is zs[0] for z in zs):
        zs, per_task = zs[:1], False
    rows = zs[0].shape[0]
    if len(slices) != n or slices[-1].stop != rows:
        raise ValueError(f"losses have {n} chunks but the slices are {list(slices)} of {rows} representation rows")
    squared = torch.zeros(n_tasks, rows, dtype=losses.dtype, device=losses.device)
    grads: Sequence[torch.Tensor | None]
    if per_task:
        grads = torch.autograd.grad(losses.sum(), zs, retain_graph=True, allow_unused=True)
    else:
        # grad_outputs selecting task k's column: no new graph nodes per task
        selectors = torch.zeros(n_tasks, n, n_tasks, dtype=losses.dtype, device=losses.device)
        selectors[torch.arange(n_tasks), :, torch.arange(n_tasks)] = 1.0
        grads = [
            torch.autograd.grad(losses, zs[0], grad_outputs=selectors[k], retain_graph=True, allow_unused=True)[0]
            for k in range(n_tasks)
        ]
    for k, grad in enumerate(grads):
        if grad is not None:
            squared[k] = torch.linalg.vector_norm(grad.reshape(rows, -1), dim=1, dtype=squared.dtype)
    squared.square_()
    chunk_of_row = torch.cat([torch.full((s.stop - s.start,), j, dtype=torch.long) for j, s in enumerate(slices)]).to(
        losses.device
    )
    norms = torch.zeros(n_tasks, n, dtype=losses.dtype, device=losses.device)
    return norms.index_add_(1, chunk_of_row, squared).T
