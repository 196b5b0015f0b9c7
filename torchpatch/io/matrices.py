"""Affine transform files, read and written as TorchIO 1.x does (``tio.io.read_matrix``, ``write_matrix``).

The matrix in memory is a 4x4 RAS+ world-to-world map from the floating
(moving) image to the reference (fixed) one, which is what
``tio.Affine``-style resampling takes. The files hold the opposite
direction, each in its own world:

=================  =============  ================================================
suffix             library        in the file
=================  =============  ================================================
``.tfm``, ``.h5``  ITK            the inverse, in LPS (SimpleITK's transform files)
``.txt``,          NiftyReg,      the inverse, in RAS+, as four rows of text
``.trsf``          blockmatching
=================  =============  ================================================

So ``read_matrix(path)`` is ``inv(F @ M_file @ F)`` for ITK files (``F``
flips the first two axes, :data:`~torchpatch.io.sitk_images.FLIPXY_44`) and
``inv(M_file)`` for text files, and ``write_matrix`` undoes it: the files
round-trip with TorchIO's. Unlike TorchIO, an ITK transform's centre of
rotation is honoured (TorchIO ignores it, which is right only for a centre
at 0, as the transforms it writes have) and any linear ITK transform reads
(Euler, versor, similarity, translation...), not only ``AffineTransform``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
import torch

from ..typing import TypePath
from .atomic import atomic_path
from .sitk_images import FLIPXY_44
from .tensors import to_numpy

#: Suffixes of the transform files SimpleITK reads and writes.
ITK_MATRIX_SUFFIXES = (".tfm", ".h5")
#: Suffixes of text matrices (NiftyReg, blockmatching).
TEXT_MATRIX_SUFFIXES = (".txt", ".trsf")

Matrix = npt.NDArray[np.floating[Any]]


def _suffix(path: Path, verb: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in ITK_MATRIX_SUFFIXES + TEXT_MATRIX_SUFFIXES:
        raise ValueError(
            f"cannot {verb} the transform file {str(path)!r}: unknown suffix {suffix!r}; "
            f"expected {', '.join(ITK_MATRIX_SUFFIXES)} (ITK) or {', '.join(TEXT_MATRIX_SUFFIXES)} (NiftyReg)"
        )
    return suffix


def _linear_itk_transform(transform: sitk.Transform, path: Path) -> Any:
    """The one linear 3D transform a SimpleITK transform file holds, as its own class (with ``GetMatrix``)."""
    if transform.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(transform)
        if composite.GetNumberOfTransforms() != 1:
            raise ValueError(
                f"{str(path)!r} holds {composite.GetNumberOfTransforms()} transforms; read_matrix reads one"
            )
        transform = composite.GetNthTransform(0)
    linear = transform.Downcast()
    if transform.GetDimension() == 3 and isinstance(linear, sitk.TranslationTransform):
        return sitk.AffineTransform((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), linear.GetOffset())
    if not hasattr(linear, "GetMatrix") or transform.GetDimension() != 3:
        raise ValueError(
            f"{str(path)!r} holds a {transform.GetDimension()}D {transform.GetName()}; "
            "read_matrix reads linear 3D transforms (affine, Euler, versor, translation...)"
        )
    return linear


def _read_itk(path: Path) -> Matrix:
    linear = _linear_itk_transform(sitk.ReadTransform(str(path)), path)
    matrix = np.reshape(linear.GetMatrix(), (3, 3))
    center = np.asarray(linear.GetCenter())
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = np.asarray(linear.GetTranslation()) + center - matrix @ center  # ITK: A (x - c) + c + t
    return np.linalg.inv(FLIPXY_44 @ lps @ FLIPXY_44)


def _read_text(path: Path) -> Matrix:
    matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if matrix.shape != (4, 4):
        raise ValueError(f"{str(path)!r} must hold a 4x4 matrix (four rows of four numbers), got shape {matrix.shape}")
    return np.linalg.inv(matrix)


def read_matrix(path: TypePath) -> torch.Tensor:
    """Read an affine transform file as a float64 4x4 RAS+ tensor (floating to reference).

    See the module docstring for the formats and the conventions (the
    inverse in the file; LPS for ITK), which are TorchIO's.

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: For an unknown suffix, or a file that does not hold one
            invertible linear 3D transform, naming the file.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'flirt.txt'
        >>> _ = path.write_text('2 0 0 0\\n0 2 0 0\\n0 0 2 0\\n0 0 0 1\\n')
        >>> read_matrix(path).diagonal().tolist()
        [0.5, 0.5, 0.5, 1.0]
    """
    resolved = Path(path).expanduser()
    suffix = _suffix(resolved, "read")
    if not resolved.is_file():
        raise FileNotFoundError(f"transform file not found: {str(path)!r}")
    try:
        matrix = _read_itk(resolved) if suffix in ITK_MATRIX_SUFFIXES else _read_text(resolved)
    except ValueError:
        raise
    except Exception as error:  # SimpleITK, numpy and linear-algebra errors become one clear message
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read the transform in {str(path)!r}: {reason}") from error
    return torch.from_numpy(matrix)


def _checked_matrix(matrix: Any, path: TypePath) -> Matrix:
    try:
        array = np.array(to_numpy(matrix), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"the matrix for {str(path)!r} must be a 4x4 array of numbers, got {type(matrix).__name__}"
        ) from error
    if array.shape != (4, 4) or not np.isfinite(array).all() or abs(np.linalg.det(array)) < 1e-12:
        raise ValueError(
            f"the matrix for {str(path)!r} must be an invertible 4x4 matrix of finite numbers, got\n{array}"
        )
    return array


def write_matrix(matrix: Any, path: TypePath) -> None:
    """Write a 4x4 RAS+ affine (floating to reference) as a transform file, atomically.

    The format follows the suffix (see the module docstring); TorchIO and
    ITK/NiftyReg tools read the file back. A ``.txt`` file holds eight
    decimals, as TorchIO writes them.

    Raises:
        FileNotFoundError: If the folder of ``path`` does not exist.
        ValueError: For an unknown suffix (TorchIO's writes nothing then),
            or a matrix that is not an invertible 4x4 one.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'rigid.tfm'
        >>> shift = torch.eye(4, dtype=torch.float64)
        >>> shift[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
        >>> write_matrix(shift, path)
        >>> read_matrix(path)[:3, 3].tolist()
        [1.0, 2.0, 3.0]
    """
    target = Path(path).expanduser()
    suffix = _suffix(target, "write")
    array = _checked_matrix(matrix, path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(target.parent)!r} does not exist")
    with atomic_path(target) as temporary:
        if suffix in ITK_MATRIX_SUFFIXES:
            lps = np.linalg.inv(FLIPXY_44 @ array @ FLIPXY_44)
            transform = sitk.AffineTransform(lps[:3, :3].ravel().tolist(), lps[:3, 3].tolist())
            sitk.WriteTransform(transform, str(temporary))
        else:
            np.savetxt(temporary, np.linalg.inv(array), fmt="%.8f")


__all__ = ["ITK_MATRIX_SUFFIXES", "TEXT_MATRIX_SUFFIXES", "read_matrix", "write_matrix"]
