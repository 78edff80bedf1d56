"""Batch jobs over several processes: the pattern diffusers documents for distributed inference, with accelerate.

`accelerate launch` (or `torchrun`) starts one process per GPU (or CPU worker); each one runs the whole command,
takes its share of the planned items with `PartialState.split_between_processes`, and works through it in batches.
The main process shows one progress bar for the whole job. Every process takes part in the same collectives in the
same order, so each process runs as many rounds as the busiest one (an idle process contributes an empty batch).
With a single process (no launcher) every function here is the plain single-process loop.
"""

from contextlib import contextmanager
from typing import Callable, Hashable, Iterator, List, Optional, Sequence, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import gather_object, parse_flag_from_env
from tqdm.auto import tqdm


Item = TypeVar("Item")


def process_state(device: Optional[str] = None) -> PartialState:
    """accelerate's view of this process: its index, the number of processes and its device.

    Processes that run on the CPU (`device` is "cpu", `ACCELERATE_USE_CPU` is set as `accelerate launch --cpu` sets
    it, or there is no GPU) talk over gloo; `PartialState` alone would see such processes as unrelated single runs,
    each doing the whole job.
    """
    on_cpu = device is not None and torch.device(device).type == "cpu"
    return PartialState(cpu=on_cpu or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())


@contextmanager
def command_processes(device: Optional[str] = None) -> Iterator[PartialState]:
    """`process_state` for the whole of a command: each process destroys the process group on its way out, returned
    or raised.

    torch asks every process to call `destroy_process_group` before it exits: a gloo group left to the interpreter's
    shutdown can abort a process whose work is done (SIGABRT, "terminate called without an active exception"; 1 run in
    20 of `sr3-upscale` over 2 CPU processes), and the launcher then reports the whole run as failed. With a single
    process there is no group, and this is `process_state` alone.
    """
    state = process_state(device)
    try:
        yield state
    finally:
        state.destroy_process_group()


def batches_of_this_process(
    state: PartialState,
    items: Sequence[Item],
    batch_size: int,
    key: Optional[Callable[[Item], Hashable]] = None,
    desc: str = "images",
    unit: str = "image",
) -> Iterator[List[Item]]:
    """Yield this process's share of `items` in batches of up to `batch_size`; the main process's progress bar counts
    the items of every process once the caller has finished with each batch.

    Args:
        state (`accelerate.PartialState`): the processes of the run.
        items (`Sequence`): the planned items, the same list on every process: process `i` gets the `i`-th
            contiguous slice of `split_between_processes` (sizes differ by at most one), so each item is done exactly
            once.
        batch_size (`int`): items per batch.
        key (`Callable`, *optional*): consecutive items share a batch only if their `key` is equal (e.g. the image
            size); default: any items do.
        desc (`str`), unit (`str`): the progress bar's labels.

    Every process receives the same number of batches, the busiest process's count; the extra ones are empty. The
    progress update after each batch is a collective (`gather_object`), so a caller may run its own collectives
    inside the loop as long as every process runs them for every batch, empty or not.
    """
    with state.split_between_processes(list(items)) as share:
        batches = []
        for item in share:
            if not batches or len(batches[-1]) == batch_size or (key is not None and key(batches[-1][-1]) != key(item)):
                batches.append([])
            batches[-1].append(item)
    rounds = max(gather_object([len(batches)]))
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not state.is_main_process) as progress:
        for index in range(rounds):
            batch = batches[index] if index < len(batches) else []
            yield batch
            progress.update(sum(gather_object([len(batch)])))

