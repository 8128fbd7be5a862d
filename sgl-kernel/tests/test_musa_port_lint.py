"""The MUSA porting lint passes on this tree and catches each construct that breaks MUSA."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
spec = importlib.util.spec_from_file_location("musa_port_lint", TOOLS / "musa_port_lint.py")
lint = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = lint  # dataclasses look their module up
spec.loader.exec_module(lint)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchada") is None,
    reason="torchada (PyPI) is needed for its porting rules",
)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    stage_dir = tmp_path_factory.mktemp("lint") / "stage"
    lint.stage(stage_dir)
    return stage_dir


def test_the_tree_passes(staged, tmp_path):
    assert lint.run(tmp_path / "stage") == []


def test_torchada_is_not_imported():
    lint.load_torchada_rules()
    assert "torchada" not in sys.modules  # importing it would patch torch on this host


PLANTED = {
    "plain-asm": 'asm("mov.u32 %0, %%laneid;" : "=r"(lane));',
    "cuda-namespace": "using Op = cuda::maximum<>;",
    "dispatch-key": "TORCH_LIBRARY_IMPL(sgl_kernel, CUDA, m) {}",
    "philox-member": "auto s = gen.philox_cuda_state(4);",
    "dead-ptx": 'asm volatile("rcp.approx.f32 %0, %1;" : "=f"(y) : "f"(x));',
    "warp-32": "int lane = threadIdx.x % 32;",
}


@pytest.mark.parametrize("rule", sorted(PLANTED))
def test_a_planted_construct_is_found(staged, tmp_path, rule):
    tree = tmp_path / "stage"
    shutil.copytree(staged, tree)
    bad = tree / "csrc" / "planted.cu"
    bad.write_text(f"// planted for the test\n__device__ void f() {{\n  {PLANTED[rule]}\n}}\n")
    findings = lint.lint_sources(tree, lint.load_torchada_rules())
    assert [(f.path, f.line, f.rule) for f in findings] == [("csrc/planted.cu", 3, rule)]


def test_cuda_namespace_inside_a_cuda_version_branch_is_not_compiled_by_mcc(staged, tmp_path):
    tree = tmp_path / "stage"
    shutil.copytree(staged, tree)
    (tree / "csrc" / "guarded.cu").write_text(
        "#if CUDA_VERSION >= 12090\nusing Op = cuda::maximum<>;\n#else\nusing Op = cub::Max;\n#endif\n"
        "#if CUDA_VERSION >= 12090\n#else\nusing Bad = cuda::minimum<>;\n#endif\n"
    )
    findings = lint.lint_sources(tree, lint.load_torchada_rules())
    assert [(f.path, f.line, f.rule) for f in findings] == [
        ("csrc/guarded.cu", 8, "cuda-namespace")
    ]


def test_an_nvcc_only_flag_in_the_musa_flags_is_found(monkeypatch):
    setup_musa = lint.load_setup_musa()
    assert lint.lint_flags(setup_musa) == []
    monkeypatch.setattr(
        setup_musa, "MCC_FLAGS", setup_musa.MCC_FLAGS + ["--expt-relaxed-constexpr"]
    )
    assert [f.rule for f in lint.lint_flags(setup_musa)] == ["nvcc-flag"]


def test_main_exit_status(tmp_path, capsys):
    assert lint.main(["--keep", str(tmp_path / "kept")]) == 0
    assert "0 finding(s)" in capsys.readouterr().out
