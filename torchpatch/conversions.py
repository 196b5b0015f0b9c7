"""An image as other libraries hold it: SimpleITK, Pillow, a matplotlib figure.

:class:`ImageConversions` is the part of :class:`~torchpatch.image.Image`
that TorchIO 1.x scripts call to hand an image to another library, with
TorchIO's names and arguments: :meth:`~ImageConversions.as_sitk` and
:meth:`~ImageConversions.from_sitk` (SimpleITK, whose world is LPS: the
RAS+ affine is turned into LPS spacing, origin and direction),
:meth:`~ImageConversions.as_pil` (a 2D image as a picture) and
:meth:`~ImageConversions.plot` (three orthogonal slices, or the picture of a
2D image; matplotlib is the optional ``torchpatch[plot]`` extra), and
:meth:`~ImageConversions.save` and :meth:`~ImageConversions.numpy` (a file, an array).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from .constants import INTENSITY
from .image_plot import plot_volume
from .io import nib_to_sitk, write_image
from .io.sitk import from_sitk as sitk_voxels
from .typing import TypeAffine, TypePath, TypeTriplet
from .visualization import make_gif, plot_histogram

Array = np.ndarray[Any, np.dtype[Any]]


def to_sitk(data: torch.Tensor, affine: TypeAffine, force_3d: bool = False) -> sitk.Image:
    """``(C, I, J, K)`` voxels and a RAS+ affine as a SimpleITK image: :func:`torchpatch.io.nib_to_sitk`.

    Example:
        >>> image = to_sitk(torch.zeros(1, 4, 3, 2), np.diag([2.0, 3.0, 4.0, 1.0]))
        >>> image.GetSize(), image.GetSpacing(), image.GetDirection()[:3]
        ((4, 3, 2), (2.0, 3.0, 4.0), (-1.0, 0.0, 0.0))
    """
    return nib_to_sitk(data, affine, force_3d=force_3d)


class ImageConversions:
    """SimpleITK, Pillow and matplotlib views of an image (mixed into :class:`~torchpatch.image.Image`).

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.rand(1, 4, 3, 2))
        >>> back = ScalarImage.from_sitk(image.as_sitk())
        >>> torch.equal(back.data, image.data), np.allclose(back.affine, image.affine)
        (True, True)
    """

    # Provided by Image.
    type: str | None

    def _describe(self, what: str = "") -> str:
        raise NotImplementedError

    @property
    def data(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def affine(self) -> TypeAffine:
        raise NotImplementedError

    @property
    def spatial_shape(self) -> TypeTriplet:
        raise NotImplementedError

    def is_2d(self) -> bool:
        raise NotImplementedError

    def get_center(self, lps: bool = False) -> tuple[float, float, float]:
        """World position of the volume's centre (the middle of its first and last voxel centres), TorchIO's method.

        Args:
            lps: Give it in LPS+ (SimpleITK's world) instead of RAS+.

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.zeros(1, 10, 10, 1))
            >>> image.get_center(), image.get_center(lps=True)
            ((4.5, 4.5, 0.0), (-4.5, -4.5, 0.0))
        """
        index = (np.asarray(self.spatial_shape, dtype=np.float64) - 1) / 2
        r, a, s = (np.asarray(self.affine, dtype=np.float64) @ np.append(index, 1.0))[:3]
        return (float(-r), float(-a), float(s)) if lps else (float(r), float(a), float(s))

    def save(self, path: TypePath, squeeze: bool | None = None) -> None:
        """Write the image, atomically; the format follows the extension (:func:`torchpatch.io.write_image`).

        Args:
            path: The file to write.
            squeeze: ``True`` writes a depth-one image as a 2D image in the
                formats SimpleITK writes (NIfTI, NRRD, MetaImage...), as
                TorchIO does; ``None`` or ``False`` keep it 3D with a depth of
                one (2D raster formats, PNG..., are 2D either way).

        Example:
            >>> import tempfile, pathlib
            >>> from torchpatch import ScalarImage
            >>> out = pathlib.Path(tempfile.mkdtemp()) / 'x.nii.gz'
            >>> ScalarImage(tensor=torch.ones(1, 2, 2, 2)).save(out)
            >>> ScalarImage(out).data.sum().item()
            8.0
        """
        write_image(self.data, self.affine, path, squeeze)

    def numpy(self) -> Array:
        """The voxels as a numpy array (shares memory when possible)."""
        return self.data.detach().cpu().numpy()

    def as_sitk(self, force_3d: bool = False) -> sitk.Image:
        """The image as a :class:`SimpleITK.Image` (TorchIO's method).

        Spacing, origin and direction are the affine's, in LPS as SimpleITK
        wants them. A depth-one image becomes a 2D image (pass
        ``force_3d=True`` for a 3D one of depth 1); several channels make a
        vector image. ``bool`` voxels become ``uint8`` and half floats
        ``float32``, types SimpleITK lacks. Unlike TorchIO, a 2D image keeps
        its in-plane direction (TorchIO always writes ``(-1, -1)``), so
        :meth:`from_sitk` gives the image back exactly.

        Example:
            >>> from torchpatch import ScalarImage
            >>> image = ScalarImage(tensor=torch.zeros(3, 8, 6, 1))
            >>> sitk_image = image.as_sitk()
            >>> sitk_image.GetSize(), sitk_image.GetNumberOfComponentsPerPixel(), sitk_image.GetDirection()
            ((8, 6), 3, (-1.0, 0.0, 0.0, -1.0))
        """
        return to_sitk(self.data, self.affine, force_3d=force_3d)

    @classmethod
    def from_sitk(cls, sitk_image: sitk.Image, **kwargs: Any) -> Any:
        """A new image of this class from a :class:`SimpleITK.Image` (TorchIO's classmethod).

        A 2D SimpleITK image becomes depth one, a vector image one channel
        per component, and its LPS geometry a RAS+ affine.

        Args:
            sitk_image: The SimpleITK image.
            **kwargs: More arguments of the class (``check_nans``,
                ``dtype``, metadata). ``Image.from_sitk`` makes an intensity
                image unless ``type`` is given.

        Example:
            >>> from torchpatch import LabelMap, ScalarImage
            >>> LabelMap.from_sitk(sitk.Image(20, 30, 40, sitk.sitkUInt16)).shape
            (1, 20, 30, 40)
            >>> photo = ScalarImage.from_sitk(sitk.Image((224, 224), sitk.sitkVectorFloat32, 3))
            >>> photo.shape, photo.orientation
            ((3, 224, 224, 1), ('L', 'P', 'S'))
        """
        if not isinstance(sitk_image, sitk.Image):
            raise TypeError(f"from_sitk needs a SimpleITK.Image, got {type(sitk_image).__name__}")
        data, affine = sitk_voxels(sitk_image)
        if cls.__name__ == "Image":  # ScalarImage and LabelMap set their own type
            kwargs.setdefault("type", INTENSITY)
        image_class: Any = cls  # an Image subclass
        return image_class(tensor=data, affine=affine, **kwargs)

    def as_pil(self, transpose: bool = True) -> Any:
        """A 2D image as a Pillow ``PIL.Image.Image`` (TorchIO's method; needs Pillow).

        Voxels are clamped to ``[0, 255]`` and cast to ``uint8``; one channel
        is repeated into RGB, three make RGB and four RGBA. With
        ``transpose`` (the default) picture rows are J and columns I, as
        the image's file shows it; ``transpose=False`` swaps them.

        Raises:
            ValueError: If the image is not 2D or has other than 1, 3 or 4 channels.

        Example:
            >>> from torchpatch import ScalarImage
            >>> picture = ScalarImage(tensor=torch.full((3, 8, 6, 1), 300.0)).as_pil()
            >>> picture.size, picture.mode, picture.getpixel((0, 0))
            ((8, 6), 'RGB', (255, 255, 255))
        """
        try:
            from PIL import Image as PILImage
        except ImportError as error:
            raise ImportError("Image.as_pil needs Pillow: pip install Pillow (or torchpatch[plot])") from error
        if not self.is_2d():
            raise ValueError(f"as_pil needs a 2D image (depth one), but {self._describe()} is {self.spatial_shape}")
        data = self.data.detach().cpu()
        channels = int(data.shape[0])
        if channels not in (1, 3, 4):
            raise ValueError(f"as_pil takes 1, 3 or 4 channels, but {self._describe()} has {channels}")
        if channels == 1:
            data = data.expand(3, -1, -1, -1)
        plane = data[..., 0].permute(2, 1, 0) if transpose else data[..., 0].permute(1, 2, 0)
        array = plane.to(torch.float64).clamp(0, 255).numpy().astype(np.uint8)
        return PILImage.fromarray(np.ascontiguousarray(array))

    def plot(self, return_fig: bool = False, **kwargs: Any) -> Any:
        """Plot three orthogonal slices through the centre, or a 2D image as its picture (TorchIO's method).

        Args:
            return_fig: Return the :class:`matplotlib.figure.Figure`
                (default: ``None``, as TorchIO).
            **kwargs: Arguments of :func:`~torchpatch.image_plot.plot_volume`
                (``show=False`` to draw without displaying, ``output_path``,
                ``indices``, ``channel``, ``cmap``, ``percentiles``, ...).

        Example:
            >>> from torchpatch import ScalarImage
            >>> figure = ScalarImage(tensor=torch.rand(1, 8, 8, 8)).plot(show=False, return_fig=True)
            >>> [ax.get_title() for ax in figure.axes]
            ['Sagittal', 'Coronal', 'Axial']
        """
        image: Any = self  # an Image
        figure = plot_volume(image, **kwargs)
        return figure if return_fig else None

    def hist(self, **kwargs: Any) -> None:
        """Draw the histogram of every voxel (TorchIO's method): :func:`torchpatch.visualization.plot_histogram`.

        Example:
            >>> from torchpatch import ScalarImage
            >>> ScalarImage(tensor=torch.rand(1, 8, 8, 8)).hist(show=False)
            >>> import matplotlib.pyplot as plt; plt.close('all')
        """
        image: Any = self  # an Image
        plot_histogram(image.data.flatten().numpy(), **kwargs)

    def to_gif(
        self,
        axis: int,
        duration: float,
        output_path: TypePath,
        loop: int = 0,
        rescale: bool = True,
        optimize: bool = True,
        reverse: bool = False,
    ) -> None:
        """Write the slices along voxel ``axis`` as a GIF (TorchIO's method): :func:`torchpatch.visualization.make_gif`.

        Example:
            >>> import tempfile, pathlib
            >>> from torchpatch import ScalarImage
            >>> path = pathlib.Path(tempfile.mkdtemp()) / 'volume.gif'
            >>> ScalarImage(tensor=torch.rand(1, 6, 6, 3)).to_gif(0, duration=0.6, output_path=path)
            >>> path.stat().st_size > 0
            True
        """
        image: Any = self  # an Image
        make_gif(
            image.data, axis, duration, output_path, loop=loop, rescale=rescale, optimize=optimize, reverse=reverse
        )

    def show(self, viewer_path: TypePath | None = None) -> None:
        """Open the image in an external viewer through SimpleITK (TorchIO's method).

        The viewer is ``viewer_path``, else the program the environment
        variable ``SITK_SHOW_COMMAND`` names, else the one SimpleITK finds
        (ImageJ/Fiji); label maps are written as ``.seg.nrrd`` (3D Slicer
        opens them as segmentations).

        Raises:
            RuntimeError: When no viewer can be started, saying how to name one.
        """
        image: Any = self  # an Image
        viewer = sitk.ImageViewer()
        if type(self).__name__ == "LabelMap":
            viewer.SetFileExtension(".seg.nrrd")
        if viewer_path is not None:
            viewer.SetApplication(str(viewer_path))
        try:
            viewer.Execute(image.as_sitk())
        except RuntimeError as error:
            raise RuntimeError(
                f"no external viewer could show {self._describe()}: give viewer_path or set SITK_SHOW_COMMAND to a "
                f"viewer (ITK-SNAP, 3D Slicer, Fiji) ({error})"
            ) from error


__all__ = ["ImageConversions", "to_sitk"]
