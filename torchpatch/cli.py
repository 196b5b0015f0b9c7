"""TorchIO's command-line tools: a transform applied to an image file, and an image file's header.

=================================================  ===============================================
command                                            TorchIO's
=================================================  ===============================================
``torchpatch-transform INPUT TRANSFORM OUTPUT``    ``tiotr``/``torchio-transform`` (same options)
``torchpatch-info INPUT``                          ``tiohd``
=================================================  ===============================================

``--kwargs "degrees=(-5,15) num_transforms=3"`` gives the transform's
arguments (each value read by :func:`torchpatch.utils.guess_type`),
``--seed`` seeds torch first (a random transform draws TorchIO's
parameters for a seed), ``--imclass LabelMap`` reads a label map.

Example:
    >>> import tempfile, pathlib, torch
    >>> from torchpatch import ScalarImage
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> ScalarImage(tensor=torch.arange(4.0).reshape(1, 4, 1, 1)).save(folder / 'in.nii.gz')
    >>> transform_main([str(folder / 'in.nii.gz'), 'Flip', str(folder / 'out.nii.gz'), '--kwargs', 'axes=0'])
    0
    >>> ScalarImage(folder / 'out.nii.gz').data.flatten().tolist()
    [3.0, 2.0, 1.0, 0.0]
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any

import torch

from . import transforms
from .image import LabelMap, ScalarImage
from .utils.helpers import IMAGE_CLASSES, apply_transform_to_file, guess_type


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """``"a=1 b=(2,3)"`` as ``{'a': 1, 'b': (2, 3)}`` (values read by :func:`~torchpatch.utils.guess_type`).

    Raises:
        ValueError: When a space-separated item is not ``key=value``.

    Example:
        >>> parse_kwargs('degrees=(-5,15) num_transforms=3 image_interpolation=linear')
        {'degrees': (-5, 15), 'num_transforms': 3, 'image_interpolation': 'linear'}
    """
    arguments: dict[str, Any] = {}
    for item in (text or "").split():
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"--kwargs items must be key=value separated by spaces, got {item!r} in {text!r}")
        arguments[key] = guess_type(value)
    return arguments


def transform_class(name: str) -> Any:
    """The transform class ``torchpatch.transforms.<name>``.

    Raises:
        ValueError: When there is none, naming the closest names.

    Example:
        >>> transform_class('RandomAffine').__name__
        'RandomAffine'
    """
    found = getattr(transforms, name, None)
    if isinstance(found, type) and issubclass(found, transforms.Transform):
        return found
    names = [n for n in dir(transforms) if isinstance(getattr(transforms, n), type)]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"no transform {name!r} in torchpatch.transforms{hint}")


def transform_main(argv: Sequence[str] | None = None) -> int:
    """``torchpatch-transform INPUT TRANSFORM OUTPUT [--kwargs ...] [--imclass ...] [--seed N] [--verbose]``.

    Example:
        >>> import tempfile, pathlib, torch
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> ScalarImage(tensor=torch.arange(4.0).reshape(1, 4, 1, 1)).save(folder / 'a.nii.gz')
        >>> paths = [str(folder / 'a.nii.gz'), 'RescaleIntensity', str(folder / 'b.nii.gz')]
        >>> transform_main([*paths, '-k', 'out_min_max=(0,3)'])
        0
        >>> ScalarImage(folder / 'b.nii.gz').data.flatten().tolist()
        [0.0, 1.0, 2.0, 3.0]
    """
    parser = argparse.ArgumentParser(
        prog="torchpatch-transform",
        description="Apply a torchpatch transform to an image file and write the result (TorchIO's tiotr).",
    )
    parser.add_argument("input_path", help="image file (or DICOM folder) to read")
    parser.add_argument("transform_name", help="name of a transform of torchpatch.transforms, e.g. RandomAffine")
    parser.add_argument("output_path", help="image file to write")
    parser.add_argument("-k", "--kwargs", help='the transform\'s arguments, e.g. "degrees=(-5,15) num_transforms=3"')
    parser.add_argument("-c", "--imclass", default="ScalarImage", choices=sorted(IMAGE_CLASSES))
    parser.add_argument("-s", "--seed", type=int, help="seed of torch's generator, set before the transform runs")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the random transform's parameters")
    parser.add_argument("-p", "--show-progress", action="store_true", help="accepted for TorchIO's scripts")
    parser.add_argument("-P", "--hide-progress", action="store_true", help="accepted for TorchIO's scripts")
    args = parser.parse_args(argv)
    try:
        transform = transform_class(args.transform_name)(**parse_kwargs(args.kwargs))
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.seed is not None:
        torch.manual_seed(args.seed)
    apply_transform_to_file(args.input_path, transform, args.output_path, class_=args.imclass, verbose=args.verbose)
    return 0


def info_main(argv: Sequence[str] | None = None) -> int:
    """``torchpatch-info INPUT [--label] [--load] [--plot] [--show]``: print the image (TorchIO's tiohd).

    Example:
        >>> import tempfile, pathlib, torch
        >>> path = pathlib.Path(tempfile.mkdtemp()) / 'a.nii.gz'
        >>> ScalarImage(tensor=torch.zeros(1, 4, 3, 2)).save(path)
        >>> info_main([str(path)])  # doctest: +ELLIPSIS
        ScalarImage(shape: (1, 4, 3, 2); spacing: (1.00, 1.00, 1.00); orientation: RAS+; ...)
        0
    """
    parser = argparse.ArgumentParser(prog="torchpatch-info", description="Print an image file's header (tiohd).")
    parser.add_argument("input_path", help="image file (or DICOM folder) to read")
    parser.add_argument("-l", "--label", action="store_true", help="read it as a label map")
    parser.add_argument("--load", action="store_true", help="read the voxels too (dtype and memory)")
    parser.add_argument("-p", "--plot", action="store_true", help="plot it with matplotlib")
    parser.add_argument("--show", action="store_true", help="open it in an external viewer (SITK_SHOW_COMMAND)")
    args = parser.parse_args(argv)
    image = (LabelMap if args.label else ScalarImage)(args.input_path)
    if args.load:
        image.load()
    print(image)
    if args.plot:
        image.plot()
    if args.show:
        image.show()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m torchpatch.cli transform ...`` or ``... info ...``; 2 (and the usage) for anything else.

    Example:
        >>> main(['convert'])
        2
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    commands = {"transform": transform_main, "info": info_main}
    if not arguments or arguments[0] not in commands:
        print("usage: python -m torchpatch.cli {transform,info} ...", file=sys.stderr)
        return 2
    return commands[arguments[0]](arguments[1:])


__all__ = ["info_main", "main", "parse_kwargs", "transform_class", "transform_main"]

if __name__ == "__main__":
    sys.exit(main())
