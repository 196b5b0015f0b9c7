"""The scripts in this folder are run by ``tests/test_torchio_scripts.py``, never imported by pytest.

They are TorchIO-style programs (``python train.py DATA_DIR OUT_DIR``), not test modules: importing
them for ``--doctest-modules`` would be pointless, so pytest collects nothing here.
"""

collect_ignore_glob = ["*.py"]
