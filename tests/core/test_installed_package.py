"""`pip install .` (not editable) gives a package that scores: the wheel carries the committed
models as data files and core.paths finds them with no checkout beside the code. Before, the
wheel had no models/ and Scorer.load() raised ModelError on the installed package.

The wheel is built from the checkout and installed, without dependencies, into a fresh venv
whose dependencies come from the test's own environment (a .pth line), so the installed
`core` is the only one that venv can import."""

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from core.paths import home, repo_root

_CHECK = """
import core.paths, json
from core import Scorer
print(json.dumps({"core": core.paths.__file__, "model": str(core.paths.default_model_path()),
                  "stateless": str(core.paths.stateless_model_path()),
                  "features": len(Scorer.load().model.meta.feature_names)}))
"""


def _installed_here() -> tuple[str, bool]:
    """This environment's fraudstream: its version, and whether its `bench` script exists."""
    version = subprocess.run([sys.executable, "-m", "pip", "show", "fraudstream"], capture_output=True,
                             text=True).stdout
    return version, (Path(sys.executable).parent / "bench").exists()


def test_an_installed_wheel_finds_and_loads_the_committed_models(tmp_path):
    root = repo_root()
    assert root is not None, "runs from the source checkout"
    before = _installed_here()
    # built from a copy: setuptools leaves build/ in the source tree, and a stale one would
    # slip modules deleted since into the next wheel
    src, wheels = tmp_path / "src", tmp_path / "wheels"
    shutil.copytree(root, src, ignore=shutil.ignore_patterns(".git", ".venv", ".fraudstream", "build", "results",
                                                              "*.egg-info", "__pycache__", ".hypothesis", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(src)], check=True, cwd=tmp_path, timeout=300)
    wheel = next(wheels.glob("fraudstream-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # --ignore-installed: with --prefix alone, pip uninstalls the fraudstream it finds in this
    # environment (the checkout's editable install, and the `bench` script with it)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--ignore-installed",
                    "--prefix", str(env_dir), str(wheel)], check=True, timeout=300)
    assert _installed_here() == before, "this environment's fraudstream was touched"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # the dependencies (numpy, numba, ...) from this environment, after the venv's own site-packages
    (site / "zz_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    out = subprocess.run([str(python), "-c", _CHECK], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                         env={"FRAUDSTREAM_HOME": str(home()), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert got["core"].startswith(str(site)), got   # the installed package, not the checkout
    share = env_dir / "share" / "fraudstream" / "models"
    assert got["model"] == str(share / "fraud-model.meta.json")
    assert got["stateless"] == str(share / "fraud-model-stateless.meta.json")
    assert (share / "fraud-model-stateless.json").is_file()
    assert got["features"] > 34   # the stateful default model: the 34 stateless features and velocity ones
