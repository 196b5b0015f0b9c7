"""The command-line tools (TorchIO's tiotr and tiohd), compared with TorchIO's where installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, cli

AFFINE = np.array([[1.2, 0, 0, -10], [0, 0.9, 0, 5], [0, 0, 2.0, 3], [0, 0, 0, 1]])


@pytest.fixture
def image_path(tmp_path: Path) -> Path:
    i, j, k = torch.meshgrid(torch.arange(12.0), torch.arange(10.0), torch.arange(8.0), indexing="ij")
    data = (100 * torch.exp(-((i - 6) ** 2 + (j - 5) ** 2 + (k - 4) ** 2) / 20)).unsqueeze(0)
    path = tmp_path / "in.nii.gz"
    ScalarImage(tensor=data, affine=AFFINE).save(path)
    return path


def _tiotr() -> Path:
    pytest.importorskip("torchio")
    command = Path(sys.executable).parent / "tiotr"
    if not command.exists():
        pytest.skip("TorchIO's tiotr command is not installed")
    return command


@pytest.mark.parametrize(
    ("name", "kwargs", "seed"),
    [
        ("Flip", "axes=(0,2)", None),
        ("RandomAffine", "degrees=10 translation=(-2,2,-1,1,0,0)", 3),
        ("RescaleIntensity", "out_min_max=(0,1) percentiles=(1,99)", None),
        ("RandomGamma", "log_gamma=0.3", 5),
    ],
)
def test_transform_command_writes_torchio_files(
    image_path: Path, tmp_path: Path, name: str, kwargs: str, seed: int | None
) -> None:
    tiotr = _tiotr()
    seed_args = ["--seed", str(seed)] if seed is not None else []
    ours, theirs = tmp_path / "ours.nii.gz", tmp_path / "theirs.nii.gz"
    assert cli.transform_main([str(image_path), name, str(ours), "--kwargs", kwargs, *seed_args]) == 0
    done = subprocess.run(
        [str(tiotr), str(image_path), name, str(theirs), "--kwargs", kwargs, *seed_args, "--hide-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    mine, peer = ScalarImage(ours), ScalarImage(theirs)
    np.testing.assert_allclose(mine.affine, peer.affine, atol=1e-6)
    torch.testing.assert_close(mine.data.float(), peer.data.float(), atol=1e-3, rtol=1e-5)


def test_label_maps_and_verbose_records(image_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "flipped.nii.gz"
    arguments = [str(image_path), "RandomFlip", str(out), "-c", "LabelMap", "-k", "flip_probability=1", "-v"]
    assert cli.transform_main(arguments) == 0
    assert capsys.readouterr().out.startswith("Applied transform: {'name': 'RandomFlip'")
    assert torch.equal(LabelMap(out).data, ScalarImage(image_path).data.flip(1))


def test_bad_commands_say_what_to_fix(image_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.transform_main([str(image_path), "RandomAfine", str(tmp_path / "x.nii.gz")])
    assert exited.value.code == 2
    assert "no transform 'RandomAfine' in torchpatch.transforms; did you mean RandomAffine" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.transform_main([str(image_path), "Flip", str(tmp_path / "x.nii.gz"), "--kwargs", "axes"])
    assert "key=value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.transform_main([str(image_path), "Flip", str(tmp_path / "x.nii.gz"), "--kwargs", "axis=0"])
    assert "missing 1 required positional argument: 'axes'" in capsys.readouterr().err
    assert cli.main([]) == 2


def test_info_command_prints_the_image(image_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.info_main([str(image_path), "--load"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("ScalarImage(shape: (1, 12, 10, 8)") and "spacing: (1.20, 0.90, 2.00)" in printed
    assert cli.main(["info", str(image_path), "--label"]) == 0
    assert capsys.readouterr().out.startswith("LabelMap(")


def test_console_scripts_are_declared() -> None:
    text = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert 'torchpatch-transform = "torchpatch.cli:transform_main"' in text
    assert 'torchpatch-info = "torchpatch.cli:info_main"' in text
