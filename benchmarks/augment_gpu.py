"""Batched augmentation on the model's device against a 3D U-Net training step (issue 12, deliverable 4).

Target: ``BatchTransform`` on a 2 x 1 x 128^3 batch (with its context
margin) costs under 5 % of one training step of a 3D U-Net on the same
batch. Prints the median times (after a warm-up) of

* the augmentation of the batch on the device (the benchmark's pipeline:
  flip, affine, elastic, gamma, noise, bias field), with and without the
  host-to-device copy of the context batch from pinned memory;
* one training step (forward, backward, optimiser) of a 3D U-Net
  (4 levels, 32 base channels, instance norm, mixed precision on CUDA);

and their ratio. Runs on CPU too (``--device cpu --size 32``) as a smoke test.

Run on a machine with a GPU::

    python benchmarks/augment_gpu.py                 # 2 x 1 x 128^3 on cuda
    python benchmarks/augment_gpu.py --device cpu --size 32 --repeats 2
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python benchmarks/augment_gpu.py``, this folder would come first on
# sys.path and benchmarks/queue.py would shadow the standard library's queue.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

import torchpatch as tp  # noqa: E402
from torchpatch.transforms.augmentation import BatchTransform  # noqa: E402


def unet(channels: int = 32, levels: int = 4, classes: int = 2) -> nn.Module:
    """A plain 3D U-Net: two 3^3 convolutions per level, strided downsampling, transposed upsampling."""

    def block(a: int, b: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv3d(a, b, 3, padding=1),
            nn.InstanceNorm3d(b, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(b, b, 3, padding=1),
            nn.InstanceNorm3d(b, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        )

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = [channels * 2**level for level in range(levels)]
            self.down = nn.ModuleList([block(1, widths[0])] + [block(a, b) for a, b in itertools.pairwise(widths)])
            self.pool = nn.ModuleList([nn.Conv3d(w, w, 2, stride=2) for w in widths[:-1]])
            self.up = nn.ModuleList([nn.ConvTranspose3d(b, a, 2, stride=2) for a, b in itertools.pairwise(widths)])
            self.merge = nn.ModuleList([block(2 * a, a) for a in widths[:-1]])
            self.head = nn.Conv3d(widths[0], classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for level, down in enumerate(self.down):
                x = down(x)
                if level < len(self.pool):
                    skips.append(x)
                    x = self.pool[level](x)
            for level in reversed(range(len(self.up))):
                x = self.merge[level](torch.cat([self.up[level](x), skips[level]], dim=1))
            return self.head(x)

    return UNet()


def timed(function: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``function`` over ``repeats`` calls after one warm-up."""
    function()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=128, help="patch side (default 128)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # elastic folding warning on small patches
    device = torch.device(args.device)
    pipeline = tp.Compose(
        [
            tp.RandomFlip(axes=(0, 1, 2)),
            tp.RandomAffine(scales=0.15, degrees=15),
            tp.RandomElasticDeformation(),
            tp.RandomGamma(),
            tp.RandomNoise(),
            tp.RandomBiasField(),
        ]
    )
    augment = BatchTransform(pipeline, patch_size=args.size)
    context = augment.context_size
    host = (
        torch.rand(args.batch, 1, *context).pin_memory()
        if device.type == "cuda"
        else torch.rand(args.batch, 1, *context)
    )
    labels = (host > 0.5).to(torch.uint8)

    def batch_on(tensors: tuple[torch.Tensor, torch.Tensor]) -> dict:
        image, label = tensors
        return {
            "image": {"data": image, "type": ["intensity"] * args.batch},
            "label": {"data": label, "type": ["label"] * args.batch},
        }

    on_device = (host.to(device), labels.to(device))
    model = unet().to(device)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    target = torch.randint(0, 2, (args.batch, args.size, args.size, args.size), device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            loss = nn.functional.cross_entropy(model(on_device[0][:, :, : args.size, : args.size, : args.size]), target)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()

    augmentation = timed(lambda: augment(batch_on(on_device)), device, args.repeats)
    with_copy = timed(
        lambda: augment(batch_on((host.to(device, non_blocking=True), labels.to(device, non_blocking=True)))),
        device,
        args.repeats,
    )
    training = timed(step, device, args.repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; batch {args.batch} x 1 x {args.size}^3, context {context}")
    print(f"augmentation on the device:          {augmentation * 1000:8.1f} ms")
    print(f"  with the pinned host->device copy:  {with_copy * 1000:8.1f} ms")
    print(f"3D U-Net training step:              {training * 1000:8.1f} ms")
    print(f"augmentation / step: {augmentation / training:.1%} (target < 5%); with copy {with_copy / training:.1%}")


if __name__ == "__main__":
    main()
