"""Where a network runs: the device (``auto``, ``cpu``, ``cuda[:N]``, ``mps``), its mixed precision,
and the processes of a ``torchrun`` job (DistributedDataParallel: gloo on CPU, nccl on CUDA).

Everything here is torch's own machinery; penchant only decides which parts to use.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from penchant.errors import InputError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto``: the first CUDA device when torch sees one, else the CPU; otherwise the named device,
    refused in one line when this machine does not have it."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device: unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: torch sees no CUDA device on this machine (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {name}: MPS is not available on this machine (use cpu or auto)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"--device: unsupported device '{name}' (use auto, cpu, cuda, cuda:N or mps)")
    return device


def uses_bf16(device: torch.device, precision: str) -> bool:
    """bf16 where asked for or, with ``auto``, on a CUDA device that supports it; fp32 otherwise (on
    the reference CPUs bf16 autocast buys nothing over a whole training: benchmarks/results/scale.md)."""
    return precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )


def autocast(device: torch.device, precision: str):
    """The autocast context of :func:`uses_bf16`'s choice (a no-op for fp32)."""
    if not uses_bf16(device, precision):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@dataclass(frozen=True)
class Processes:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def broadcast(self, values: list[float], device: torch.device) -> list[float]:
        """Rank 0's ``values`` on every rank (a no-op alone)."""
        if not self.distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.broadcast(tensor, src=0)
        return tensor.tolist()


def processes() -> Processes:
    """The job this process belongs to, from torchrun's environment; starts the process group on
    first use (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes()
    if not dist.is_initialized():
        backend = (
            "nccl" if torch.cuda.is_available() and os.environ.get("PENCHANT_BACKEND") != "gloo" else "gloo"
        )
        dist.init_process_group(backend=backend)
    return Processes(rank=dist.get_rank(), world=dist.get_world_size())


def backend() -> str | None:
    return dist.get_backend() if dist.is_initialized() else None


def local_device(device: torch.device) -> torch.device:
    """Under torchrun on CUDA, each process takes the GPU of its local rank."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device
