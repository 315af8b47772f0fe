"""benchmarks/gpu_check.py runs every section at tiny sizes on the CPU (so the GPU script cannot rot)."""

import importlib.util
import pathlib

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_smoke_runs_every_section(capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for title, _ in module.SECTIONS:
        assert f"{title}:" in out
    assert "FAILED" not in out and "SKIPPED" not in out and "0 failed sections" in out
