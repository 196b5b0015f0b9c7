"""Stacks cross from the Queue's workers in shared buffers they fill again once the training process is done."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, Queue, ScalarImage, Subject, SubjectsDataset, SubjectsLoader, UniformSampler, stacked
from torchpatch.constants import DATA, LOCATION
from torchpatch.patches import Patches
from torchpatch.queue import transfer
from torchpatch.queue.transfer import HEADER_BYTES, MAGIC, Receiver, Shipper

SIZE = (4, 1, 32, 32, 32)  # 512 KiB in float32: above MIN_BYTES


def _stack(values: torch.Tensor) -> Patches:
    template = Subject(t1=ScalarImage(tensor=torch.zeros(1, 1, 1, 1)))
    return Patches(
        template, {"t1": values}, {"t1": np.tile(np.eye(4), (len(values), 1, 1))}, np.zeros((len(values), 6))
    )


def _state(tensor: torch.Tensor) -> bytes:
    header = torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage(), 0, (HEADER_BYTES,), (1,))
    assert bytes(header[: len(MAGIC)].tolist()) == MAGIC
    return bytes([int(header[len(MAGIC)])])


def _shipped(shipper: Shipper, values: torch.Tensor) -> tuple[Patches, torch.Tensor]:
    """A stack as the training process receives it: shipped, then adopted (one process here)."""
    stack = _stack(shipper.allocate(tuple(values.shape), values.dtype).copy_(values))
    shipper.ship(stack)
    sent = stack.data["t1"]
    return stack, sent


def test_torch_still_hands_out_the_file_of_a_shared_storage():
    """transfer.py writes into a shared buffer through its file (private PyTorch API, pinned here)."""
    storage = torch.UntypedStorage._new_shared(4096)
    descriptor, size = storage._share_fd_cpu_()
    assert size == 4096 and os.pwrite(descriptor, b"abc", 0) == 3
    assert bytes(torch.empty(0, dtype=torch.uint8).set_(storage, 0, (3,), (1,)).tolist()) == b"abc"


def test_a_buffer_is_filled_again_only_after_the_training_process_let_go():
    shipper, receiver = Shipper(), Receiver()
    first, sent = _shipped(shipper, torch.full(SIZE, 1.0))
    assert _state(sent) == transfer.SENT
    receiver.adopt(first)
    assert receiver.held == 1
    kept = first.data["t1"][2]  # a patch the loop still holds
    del first
    assert _state(sent) == transfer.SENT and receiver.held == 1

    second, sent_again = _shipped(shipper, torch.full(SIZE, 2.0))
    assert sent_again.data_ptr() != sent.data_ptr()  # a new buffer: the first is in use
    assert bool((kept == 1.0).all())

    del kept
    assert _state(sent) == transfer.FREE and receiver.held == 0
    third, sent_third = _shipped(shipper, torch.full(SIZE, 3.0))
    assert sent_third.untyped_storage().data_ptr() == sent.untyped_storage().data_ptr()
    assert bool((third.data["t1"] == 3.0).all()) and bool((second.data["t1"] == 2.0).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.int16, torch.uint8, torch.bool, torch.bfloat16, torch.float64])
def test_every_dtype_crosses_unchanged(dtype):
    shipper, receiver = Shipper(), Receiver()
    values = (torch.arange(int(np.prod(SIZE))).reshape(SIZE) % 7).to(dtype)
    stack, _ = _shipped(shipper, values)
    receiver.adopt(stack)
    assert stack.data["t1"].dtype == dtype and stack.data["t1"].shape == values.shape
    assert torch.equal(stack.data["t1"], values)


def test_kept_buffers_are_capped():
    shipper = Shipper(kept_bytes=2 * 4 * int(np.prod(SIZE)))
    receiver = Receiver()
    stacks = [_shipped(shipper, torch.full(SIZE, float(i)))[0] for i in range(4)]
    for stack in stacks:
        receiver.adopt(stack)
    assert len(shipper._buffers) == 2  # the other two went out in buffers not kept
    assert [float(stack.data["t1"][0, 0, 0, 0, 0]) for stack in stacks] == [0.0, 1.0, 2.0, 3.0]


def test_small_or_foreign_stacks_are_left_as_they_are():
    shipper, receiver = Shipper(), Receiver()
    small = _stack(torch.ones(2, 1, 4, 4, 4))
    shipper.ship(small)
    assert not small.data["t1"].is_shared()
    receiver.adopt(small)
    # 64 bytes before the voxels, as in a shipped buffer, but not one of ours.
    foreign = _stack(torch.zeros(16 + int(np.prod(SIZE)))[16:].view(SIZE))
    receiver.adopt(foreign)
    assert receiver.held == 0 and foreign.data["t1"].storage_offset() == 16
    assert not foreign.data["t1"].is_shared()  # left where it was, not moved into shared memory


def test_outside_a_worker_stacks_are_neither_allocated_privately_nor_shipped():
    assert transfer.shipper() is None
    stack = _stack(transfer.allocate(SIZE, torch.float32).fill_(1))
    assert transfer.ship(stack).data["t1"].storage_offset() == 0


def _subjects(count: int = 6) -> list[Subject]:
    generator = torch.Generator().manual_seed(0)
    return [
        Subject(
            t1=ScalarImage(tensor=torch.rand(1, 40, 36, 32, generator=generator)),
            seg=LabelMap(tensor=(torch.rand(1, 40, 36, 32, generator=generator) * 3).to(torch.uint8)),
            subject_id=f"s{index}",
        )
        for index in range(count)
    ]


def _received_files(monkeypatch) -> set[tuple[int, int]]:
    """Record the shared files of every image the training process adopts."""
    files: set[tuple[int, int]] = set()
    adopt = Receiver.adopt

    def recording(self, patches):
        for data in patches.data.values():
            if data.is_shared() and data.numel() * data.element_size() >= transfer.MIN_BYTES:
                status = os.fstat(data.untyped_storage()._share_fd_cpu_()[0])
                files.add((status.st_dev, status.st_ino))
        adopt(self, patches)

    monkeypatch.setattr(Receiver, "adopt", recording)
    return files


def test_the_queue_gives_the_same_batches_and_its_workers_fill_the_same_buffers_again(monkeypatch):
    files = _received_files(monkeypatch)
    dataset = SubjectsDataset(_subjects())
    options = {"max_length": 8, "samples_per_volume": 4, "sampler": UniformSampler(32), "seed": 3}
    with Queue(dataset, num_workers=0, **options) as plain:
        expected = [
            [batch["t1"][DATA].clone(), batch["seg"][DATA].clone()]
            for _ in range(3)
            for batch in SubjectsLoader(plain, batch_size=4)
        ]
    with Queue(dataset, num_workers=2, **options) as queue:
        got = [
            [batch["t1"][DATA].clone(), batch["seg"][DATA].clone()]
            for _ in range(3)
            for batch in SubjectsLoader(queue, batch_size=4)
        ]
    assert len(got) == len(expected) == 18
    for (image, label), (image_expected, label_expected) in zip(got, expected):
        assert torch.equal(image, image_expected) and torch.equal(label, label_expected)
    # 18 stacks of t1 (the label stacks are too small to keep) went through: without reuse, 18 files.
    assert 0 < len(files) < 12


def test_patches_the_loop_keeps_are_never_overwritten():
    dataset = SubjectsDataset(_subjects())
    with Queue(dataset, max_length=8, samples_per_volume=4, sampler=UniformSampler(32), num_workers=2, seed=1) as queue:
        kept = list(queue)  # whole patches of epoch 1, views of their stacks
        copies = [(patch["t1"][DATA].clone(), patch[LOCATION].clone()) for patch in kept]
        for _ in range(3):
            for _batch in SubjectsLoader(queue, batch_size=4):
                pass
    for patch, (image, location) in zip(kept, copies):
        assert torch.equal(patch["t1"][DATA], image) and torch.equal(patch[LOCATION], location)


def _shared_memory_full(monkeypatch) -> None:
    """Make writing a stack's voxels fail as a full ``/dev/shm`` does (the header still writes)."""
    write = os.pwrite

    def full(descriptor, data, offset):
        if offset >= HEADER_BYTES:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(descriptor, data, offset)

    monkeypatch.setattr(transfer.os, "pwrite", full)  # inherited by forked workers


#: What a full shared memory says, by where the kept buffers live.
FULL = {
    "anonymous": r"no memory left for a stack of patches of 0\.5 MiB in shared memory \(an anonymous shared file",
    "dev-shm": r"no space left in shared memory \(/dev/shm.*0\.5 MiB.*--shm-size",
}


def _kept_in(where: str, monkeypatch) -> None:
    if where == "dev-shm":  # as where the kernel has no anonymous shared files
        monkeypatch.setattr(stacked, "anonymous_storage", lambda nbytes: None)
    elif stacked.anonymous_storage(64) is None:
        pytest.skip("no anonymous shared files (memfd_create) here")


@pytest.mark.parametrize("where", sorted(FULL))
def test_full_shared_memory_says_what_to_do(monkeypatch, where):
    _kept_in(where, monkeypatch)
    shipper = Shipper()
    private = shipper.allocate(SIZE, torch.float32).fill_(1)
    _shared_memory_full(monkeypatch)
    with pytest.raises(OSError, match=FULL[where]) as caught:
        shipper.buffer_for(private)
    assert caught.value.errno == errno.ENOSPC


@pytest.mark.parametrize("where", sorted(FULL))
def test_a_worker_out_of_shared_memory_names_the_subject(monkeypatch, where):
    _kept_in(where, monkeypatch)
    _shared_memory_full(monkeypatch)
    dataset = SubjectsDataset(_subjects(2))
    queue = Queue(dataset, max_length=4, samples_per_volume=4, sampler=UniformSampler(32), num_workers=1)
    with queue, pytest.raises(RuntimeError, match=r"subject 's[01]'.*" + FULL[where]):
        list(queue)


def test_torch_still_maps_a_file_it_is_given():
    """transfer.py makes kept buffers of anonymous files through this private PyTorch API (pinned here)."""
    if not hasattr(os, "memfd_create"):
        pytest.skip("no memfd_create here")
    descriptor = os.memfd_create("test", os.MFD_CLOEXEC)
    try:
        os.ftruncate(descriptor, 4096)
        storage = torch.UntypedStorage._new_shared_fd_cpu(descriptor, 4096)
        assert os.pwrite(descriptor, b"abc", 0) == 3
    finally:
        os.close(descriptor)  # the storage keeps a duplicate
    assert storage.is_shared() and storage.size() == 4096
    assert bytes(torch.empty(0, dtype=torch.uint8).set_(storage, 0, (3,), (1,)).tolist()) == b"abc"
    shared, size = storage._share_fd_cpu_()
    assert size == 4096 and os.pread(shared, 3, 0) == b"abc"


def test_kept_buffers_need_no_room_in_dev_shm(monkeypatch):
    """A full /dev/shm (64 MiB in a default Docker container) does not stop the kept buffers."""
    _kept_in("anonymous", monkeypatch)

    def full(nbytes):
        raise RuntimeError("unable to allocate shared memory(shm): No space left on device (28)")

    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", staticmethod(full))  # PyTorch's /dev/shm allocation
    shipper, receiver = Shipper(), Receiver()
    stack, sent = _shipped(shipper, torch.full(SIZE, 5.0))
    assert os.readlink(f"/proc/self/fd/{transfer._descriptor(sent.untyped_storage())}").startswith("/memfd:")
    receiver.adopt(stack)
    assert bool((stack.data["t1"] == 5.0).all()) and receiver.held == 1


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_adopting_a_stack_opens_no_file():
    shipper, receiver = Shipper(), Receiver()
    stacks = [_shipped(shipper, torch.full(SIZE, float(i)))[0] for i in range(4)]
    before = _open_files()
    for stack in stacks:
        receiver.adopt(stack)
    assert _open_files() == before and receiver.held == 4
    del stack, stacks  # the last views: every buffer is marked free through its mapping
    assert receiver.held == 0


def test_running_out_of_files_says_what_to_do():
    advice = transfer.out_of_files(OSError(errno.EMFILE, "Too many open files"))
    assert advice is not None and "ulimit -n" in advice and "max_length" in advice
    assert transfer.out_of_files(RuntimeError("received 0 items of ancdata")) is not None
    assert transfer.out_of_files(OSError(errno.ENOSPC, "No space left on device")) is None


def _queue_under_a_low_file_limit(soft: int, results) -> None:
    """In a forked child: lower the soft limit on open files, run a Queue holding hundreds of stacks."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 128, 128, 1))) for _ in range(300)]
    # 64 patches of 32x32 float32 a subject: 256 KiB stacks, the kept buffers' smallest; a pool this large
    # holds all 300 stacks at once.
    sampler = UniformSampler((32, 32, 1))
    queue = Queue(SubjectsDataset(subjects), max_length=300 * 64, samples_per_volume=64, sampler=sampler, num_workers=2)
    try:
        with queue:
            count = sum(len(batch[LOCATION]) for _ in range(2) for batch in SubjectsLoader(queue, batch_size=256))
        results.send((count, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    except Exception as error:  # noqa: BLE001 - reported to the test
        results.send(repr(error))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a child to lower its file limit")
def test_a_queue_raises_its_open_files_limit_for_the_stacks_it_holds():
    import multiprocessing
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip("the hard limit on open files is too low to show it")
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_queue_under_a_low_file_limit, args=(256, sending))  # may fork workers
    child.start()
    assert receiving.poll(120), "the child gave no result"
    result = receiving.recv()
    child.join(30)
    assert result == (2 * 300 * 64, min(transfer.OPEN_FILES, hard)), result
