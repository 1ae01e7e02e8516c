"""``import unimix`` is lazy (PEP 562): no torch until a public name is used, every public name still there."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import unimix

ROOT = Path(__file__).resolve().parents[1]


def run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_import_unimix_and_the_runtime_load_no_torch():
    run("import sys, unimix, unimix.export.runtime, unimix.io.arrays, unimix.cli\n"
        "assert unimix.__version__\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")


def test_first_public_name_loads_the_library():
    run("import sys, unimix\nm = unimix.create_model\nassert 'torch' in sys.modules and 'mixer' in unimix.BLOCKS\n"
        "assert 'graph' in unimix.TOKENIZERS and 'pointcloud' in unimix.READERS")


@pytest.mark.parametrize("name", sorted(unimix.__all__))
def test_every_public_name_resolves(name):
    assert getattr(unimix, name) is not None


def test_finetune_is_the_function_and_old_paths_still_alias():
    run("import unimix, warnings\nfrom unimix.finetune import Trainer\nassert callable(unimix.finetune)\n"
        "assert unimix.finetune.__module__ == 'unimix.train.trainer'\n"
        "with warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n"
        "    assert unimix.checkpoint.save_checkpoint is unimix.save_checkpoint\nassert w")


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        unimix.nope  # noqa: B018
