"""The built-in demo: phantoms -> Queue of patches -> training -> grid inference.

Run it with ``python -m torchpatch.demo`` (or ``make demo``). On the default
settings it trains a tiny 3D network on random patches of synthetic phantoms,
each patch augmented in the Queue's workers (flips, affine, a small elastic
deformation, gamma, noise; ``--no-augment`` turns that off), for a few
seconds on a CPU, predicts a held-out phantom whole with ``infer``
(overlapping patches stitched with Gaussian weights), prints the Dice
score per class and writes a PNG of the slice with the most foreground
(image | truth | prediction).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import io
from .constants import DATA
from .dataset import SubjectsDataset
from .datasets import phantom_subjects
from .inference import infer
from .loader import SubjectsLoader
from .queue import Queue
from .sampler import LabelSampler
from .subject import Subject
from .transforms import Compose, RandomAffine, RandomElasticDeformation, RandomFlip, RandomGamma, RandomNoise

NUM_CLASSES = 3


def tiny_unet(in_channels: int = 1, num_classes: int = NUM_CLASSES, width: int = 8) -> nn.Module:
    """A small fully convolutional 3D network (any input size works).

    Example:
        >>> tiny_unet()(torch.zeros(1, 1, 8, 8, 8)).shape
        torch.Size([1, 3, 8, 8, 8])
    """
    return nn.Sequential(
        nn.Conv3d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(width, width, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.Conv3d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(width, num_classes, 1),
    )


def dice_scores(prediction: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES) -> list[float]:
    """Dice per foreground class between two integer label volumes.

    Example:
        >>> dice_scores(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
        [0.6666666666666666, 0.6666666666666666]
    """
    scores = []
    for label in range(1, num_classes):
        predicted, true = prediction == label, target == label
        denominator = int(predicted.sum()) + int(true.sum())
        scores.append(1.0 if denominator == 0 else 2 * int((predicted & true).sum()) / denominator)
    return scores


def augmentation() -> Compose:
    """The demo's training augmentation, applied per patch with context by the Queue.

    Flips along the three axes, small rotations and scalings, a mild elastic
    deformation (the affine and elastic maps are resampled once, together),
    then contrast (gamma) and noise.

    Example:
        >>> from torchpatch.datasets import make_phantom
        >>> _ = torch.manual_seed(0)
        >>> out = augmentation()(make_phantom(16))
        >>> [record['name'] for record in out['history']]
        ['RandomFlip', 'RandomAffine', 'RandomElasticDeformation', 'RandomGamma', 'RandomNoise']
    """
    return Compose(
        [
            RandomFlip(axes=(0, 1, 2)),
            RandomAffine(scales=0.1, degrees=10),
            RandomElasticDeformation(num_control_points=5, max_displacement=2),
            RandomGamma(log_gamma=0.1),
            RandomNoise(std=(0, 0.02)),
        ]
    )


def _slice_png(subject: Subject, prediction: torch.Tensor, path: Path) -> None:
    """Slice with the most foreground: image | truth | prediction, 8-bit grey PNG."""
    k = int((subject["label"].data[0] > 0).sum(dim=(0, 1)).argmax())
    image = subject["image"].data[0, :, :, k].float()
    image = (image - image.min()) / (image.max() - image.min() + 1e-8)
    truth = subject["label"].data[0, :, :, k].float() / (NUM_CLASSES - 1)
    predicted = prediction[:, :, k].float() / (NUM_CLASSES - 1)
    gap = torch.ones(2, image.shape[1])
    panel = torch.cat([image, gap, truth, gap, predicted], dim=0)  # along I: side by side in the PNG
    pixels = (panel * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    io.write_image(pixels[None, :, :, None], np.eye(4), path)


def run(
    num_subjects: int = 5,
    shape: Sequence[int] = (48, 48, 48),
    patch_size: int = 24,
    steps: int = 150,
    batch_size: int = 4,
    output: Path = Path("demo_output"),
    seed: int = 0,
    num_workers: int = 2,
    augment: bool = True,
) -> dict[str, float]:
    """Train on patches of phantoms and predict a held-out one; returns metrics.

    With ``augment``, every training patch goes through :func:`augmentation`
    in the Queue's workers, with the context its spatial transforms need.

    Example:
        >>> import tempfile
        >>> metrics = run(num_subjects=2, shape=(16, 16, 16), patch_size=8, steps=2,
        ...               output=Path(tempfile.mkdtemp()), seed=1, num_workers=0)
        augmentation per patch: RandomFlip, RandomAffine, ...
        step    2/2  loss ...
        held-out phantom-003: Dice class 1 = ...
        wrote ...prediction.png (image | truth | prediction) in ... s
        >>> sorted(metrics)
        ['dice_1', 'dice_2', 'seconds']
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    subjects = phantom_subjects(num_subjects + 1, shape, seed=seed)
    training, held_out = subjects[:-1], subjects[-1]

    # Patches centred on each class equally often, so the small blobs are seen,
    # cut (and augmented, with the context the spatial transforms need) by two
    # worker processes while the model trains.
    patch_transform = augmentation() if augment else None
    if patch_transform is not None:
        names = ", ".join(type(t).__name__ for t in patch_transform.transforms)
        print(f"augmentation per patch: {names}")
    else:
        print("augmentation: off")
    sampler = LabelSampler(patch_size, "label", label_probabilities={0: 1, 1: 1, 2: 1})
    queue = Queue(
        SubjectsDataset(training),
        max_length=8 * batch_size,
        samples_per_volume=2 * batch_size,
        sampler=sampler,
        num_workers=num_workers,
        seed=seed,
        patch_transform=patch_transform,
    )
    loader = SubjectsLoader(queue, batch_size=batch_size)

    model = tiny_unet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_function = nn.CrossEntropyLoss()
    step = 0
    while step < steps:
        for batch in loader:
            logits = model(batch["image"][DATA].float())
            loss = loss_function(logits, batch["label"][DATA][:, 0].long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 20 == 0 or step == steps:
                print(f"step {step:4d}/{steps}  loss {loss.item():.4f}")
            if step == steps:
                break
    queue.close()

    # Whole-volume prediction: overlapping patches, blended with Gaussian weights.
    model.eval()
    logits = infer(
        model,
        held_out,
        patch_size=patch_size,
        patch_overlap=patch_size // 2,
        batch_size=batch_size,
        overlap_mode="gaussian",
        image_name="image",
        progress=False,
    )
    prediction = logits.data.argmax(dim=0)
    scores = dice_scores(prediction, held_out["label"].data[0])
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    png = output / "prediction.png"
    _slice_png(held_out, prediction, png)
    seconds = time.perf_counter() - start
    print(f"held-out {held_out['subject_id']}: Dice class 1 = {scores[0]:.3f}, class 2 = {scores[1]:.3f}")
    print(f"wrote {png} (image | truth | prediction) in {seconds:.1f} s")
    return {"dice_1": scores[0], "dice_2": scores[1], "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subjects", type=int, default=5, help="training phantoms (default 5)")
    parser.add_argument("--size", type=int, default=48, help="phantom side in voxels (default 48)")
    parser.add_argument("--patch-size", type=int, default=24, help="patch side in voxels (default 24)")
    parser.add_argument("--steps", type=int, default=150, help="training steps (default 150)")
    parser.add_argument("--output", type=Path, default=Path("demo_output"), help="folder for the PNG")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="Queue worker processes (default 2)")
    parser.add_argument("--no-augment", action="store_true", help="train without patch augmentation")
    args = parser.parse_args(argv)
    run(
        num_subjects=args.subjects,
        shape=(args.size,) * 3,
        patch_size=args.patch_size,
        steps=args.steps,
        output=args.output,
        seed=args.seed,
        num_workers=args.workers,
        augment=not args.no_augment,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
