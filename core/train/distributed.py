"""torch.distributed for training: started by torchrun's environment, gloo on CPU, nccl on GPU.

``torchrun --nproc-per-node N -m bertzoo train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address; :func:`setup` joins the process group from them (a plain
run is a world of one and touches nothing). The model is wrapped in DDP, or sharded with FSDP2's
``fully_shard`` (each layer, then the root) when asked. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from bertzoo.errors import InputError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    started_here: bool = False  # this run created the process group (and must destroy it)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def setup(device: str | None) -> tuple[World, torch.device]:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    wanted = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(wanted)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local if size > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if size <= 1:
        return World(), dev
    started = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        started = True
    return World(rank, size, local, started), dev


def teardown(world: World) -> None:
    if world.started_here and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, world: World, device: torch.device, *, fsdp: bool, unused: bool = True) -> nn.Module:
    """``module`` ready for data-parallel training: DDP, FSDP2, or itself in a world of one.

    ``unused``: some parameters get no gradient (a pooler the objective does not read); DDP must look for them.
    """
    if fsdp:
        if not world.distributed:
            raise InputError("--fsdp shards the model across processes: start it with torchrun --nproc-per-node N")
        from torch.distributed.fsdp import fully_shard

        layers = getattr(getattr(getattr(module, "model", None), "bert", None), "encoder", None)
        for layer in getattr(layers, "layer", []):
            fully_shard(layer)
        fully_shard(module)
        return module
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=unused)


def full_model(step: nn.Module, model: nn.Module, world: World) -> nn.Module | None:
    """An FSDP-sharded model gathered whole into a CPU copy on rank 0 (None elsewhere); every
    process must call it (the gather is collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(step, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not world.main:
        return None
    from bertzoo.factory import build

    copy = build(getattr(model, "spec"))  # noqa: B009 (every bertzoo model carries its spec)
    copy.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    return copy


def gather_rows(local: Tensor) -> tuple[Tensor, int]:
    """Every process's rows of ``local`` (gradients flow back to each process's own part), and
    where this process's rows start. Rows per process may differ."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local, 0
    from torch.distributed.nn.functional import all_gather

    world, rank = dist.get_world_size(), dist.get_rank()
    sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], device=local.device))
    counts = [int(s) for s in sizes]
    longest = max(counts)
    padded = torch.cat([local, local.new_zeros(longest - local.shape[0], *local.shape[1:])])
    parts = all_gather(padded)
    return torch.cat([p[:n] for p, n in zip(parts, counts, strict=True)]), sum(counts[:rank])


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over processes."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [float(x) for x in t.tolist()]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def broadcast_flag(flag: bool, world: World, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every process (e.g. early stopping, decided on rank 0)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


__all__ = ["World", "all_sum", "barrier", "broadcast_flag", "full_model", "gather_rows", "setup", "teardown", "wrap"]
