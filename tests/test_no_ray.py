import pkgutil
import subprocess
import sys

import mcc


def test_mcc_imports_without_ray_or_optuna():
    modules = [
        m.name for m in pkgutil.walk_packages(mcc.__path__, "mcc.") if m.name != "mcc.__main__"
    ]
    code = (
        "import sys\n"
        "for blocked in ('ray', 'optuna', 'tune', 'ablations'):\n"
        "    sys.modules[blocked] = None\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
        "print(len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(modules) >= 15
