"""benchmarks/gpu_check.py runs every section at tiny sizes on the CPU (so the GPU script cannot rot)."""

from scripts import load_script


def test_gpu_check_smoke_runs_every_section(capsys):
    module = load_script("benchmarks/gpu_check.py")
    assert module.main(["--smoke", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for title, _ in module.SECTIONS:
        assert f"{title}:" in out
    assert "FAILED" not in out and "SKIPPED" not in out and "0 failed sections" in out
