"""setup_musa.py's MUSA configuration, with torch_musa simulated, and FlashInfer staging."""

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

KERNEL_DIR = Path(__file__).resolve().parents[1]
REPO = KERNEL_DIR.parent


def load_setup_musa():
    spec = importlib.util.spec_from_file_location(
        "setup_musa_under_test", KERNEL_DIR / "setup_musa.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sm():
    return load_setup_musa()


def tracked_tree_digest():
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout
    digest = hashlib.sha256()
    for name in sorted(f for f in files.decode().split("\0") if f):
        path = REPO / name
        if path.is_file():
            digest.update(name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize(
    "env, arch",
    [({}, "mp_31"), ({"MTGPU_TARGET": "mp_31"}, "mp_31"), ({"MTGPU_TARGET": "mp_22"}, "mp_22")],
)
def test_musa_arch_selection(sm, env, arch):
    assert sm.musa_arch(env) == arch


@pytest.mark.parametrize("target", ["mp_21", "sm_90", ""])
def test_unsupported_musa_arch_is_a_clear_error(sm, target):
    with pytest.raises(
        sm.BuildError,
        match=rf"MTGPU_TARGET='{target}' is not supported; use one of: mp_31 \(MTT S5000\), mp_22 \(MTT S4000\)",
    ):
        sm.musa_arch({"MTGPU_TARGET": target})


def test_musa_configuration_with_torch_musa_simulated(sm, monkeypatch, tmp_path):
    """The MUSA branch imports torchada, compiles a staged copy with mcc flags, and the
    checkout stays byte-for-byte unchanged even when the staged copy is ported in place."""
    imported = []

    class FakeTorchada(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            if name != "torchada":
                return None
            imported.append(name)
            return importlib.machinery.ModuleSpec(name, self)

        def exec_module(self, module):
            pass

    monkeypatch.delitem(sys.modules, "torchada", raising=False)
    monkeypatch.setattr(sys, "meta_path", [FakeTorchada()] + sys.meta_path)
    monkeypatch.setattr(sm, "is_musa_host", lambda: True)
    before = tracked_tree_digest()

    ext, cmdclass = sm.extension_and_cmdclass({"MTGPU_TARGET": "mp_22"})

    stage = KERNEL_DIR / "build" / "musa_src"
    assert ext.name == "sgl_kernel.common_ops"
    assert all((KERNEL_DIR / s).resolve().is_relative_to(stage) for s in ext.sources)
    assert sorted(Path(s).name for s in ext.sources) == ["common_extension_musa.cc", "sampling.cu"]
    assert any(str(d).endswith("flashinfer_include") for d in ext.include_dirs)
    assert (stage / "flashinfer_include" / "flashinfer" / "sampling.cuh").is_file()
    flags = ext.extra_compile_args
    assert "force_mcc" in flags["cxx"] and "-DUSE_MUSA" in flags["cxx"]
    assert flags["nvcc"][:4] == ["-x", "musa", "-mtgpu", "-O3"]
    assert "--cuda-gpu-arch=mp_22" in flags["nvcc"]
    assert not [f for f in flags["nvcc"] if f.startswith(("--expt", "-gencode", "-U__CUDA"))]
    assert "build_ext" in cmdclass
    assert imported == ["torchada"]

    # torchada ports sources in place: do that to the staged copy, as the build would.
    for path in stage.rglob("*.cu*"):
        path.write_text(path.read_text().replace("cuda", "musa"))
    assert tracked_tree_digest() == before


def test_cuda_configuration_uses_the_checkout_sources(sm, monkeypatch):
    monkeypatch.setattr(sm, "is_musa_host", lambda: False)
    kwargs = sm.cuda_extension_kwargs(sm.stage_flashinfer({}))
    assert kwargs["sources"] == ["csrc/common_extension_musa.cc", "csrc/sampling/sampling.cu"]
    assert "--expt-relaxed-constexpr" in kwargs["extra_compile_args"]["nvcc"]


# ----------------------------------------------------------------------------- staging


@pytest.fixture
def isolated_stage(sm, monkeypatch, tmp_path):
    monkeypatch.setattr(sm, "THIRDPARTY_DIR", tmp_path)
    monkeypatch.setattr(sm, "FLASHINFER_DIR", tmp_path / "flashinfer")
    monkeypatch.setattr(sm, "WHEEL_CACHE_DIR", tmp_path / ".cache")
    return sm


def test_staging_from_a_source_tree_applies_our_patches(isolated_stage, tmp_path):
    sm = isolated_stage
    pristine = tmp_path / "src" / "include" / "flashinfer"
    pristine.mkdir(parents=True)
    with zipfile.ZipFile(REPO / "3rdparty" / ".cache" / sm.FLASHINFER_WHEEL) as zf:
        for name in sm.FLASHINFER_HEADERS:
            (pristine / name).write_bytes(zf.read(sm.WHEEL_HEADER_PREFIX + name))
    include = sm.stage_flashinfer({"FLASHINFER_SOURCE_DIR": str(tmp_path / "src")})
    text = (include / "flashinfer" / "sampling.cuh").read_text()
    assert "temp_storage.last_valid_id = 0;" in text  # 0001
    assert "while (min_gt_low < max_le_high)" in text  # 0002
    assert "top_k_arr[row_idx]" in text  # 0003
    assert "top_p > 0 ? top_p : 1e-30f" in text  # 0004
    assert "last_valid_id = 0" not in (pristine / "sampling.cuh").read_text()


def test_a_source_dir_without_headers_is_a_clear_error(isolated_stage, tmp_path):
    with pytest.raises(isolated_stage.BuildError, match="holds no include/flashinfer/sampling.cuh"):
        isolated_stage.stage_flashinfer({"FLASHINFER_SOURCE_DIR": str(tmp_path)})
    assert not (tmp_path / "flashinfer").exists()


def test_a_wheel_with_the_wrong_checksum_is_refused(isolated_stage, tmp_path):
    sm = isolated_stage
    (tmp_path / ".cache").mkdir()
    with zipfile.ZipFile(tmp_path / ".cache" / sm.FLASHINFER_WHEEL, "w") as zf:
        zf.writestr("flashinfer/data/include/flashinfer/sampling.cuh", "tampered")
    with pytest.raises(
        sm.BuildError, match=rf"has sha256 [0-9a-f]{{64}}, expected {sm.FLASHINFER_SHA256}"
    ):
        sm.stage_flashinfer({})
    assert not (tmp_path / "flashinfer").exists()


def test_a_patch_that_does_not_apply_leaves_no_half_staged_tree(
    isolated_stage, monkeypatch, tmp_path
):
    sm = isolated_stage
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-bad.patch").write_text(
        "--- a/include/flashinfer/sampling.cuh\n+++ b/include/flashinfer/sampling.cuh\n"
        "@@ -1,1 +1,1 @@\n-this line is not in the file\n+replacement\n"
    )
    monkeypatch.setattr(sm, "PATCH_DIR", patches)
    src = REPO / "3rdparty" / "flashinfer"  # already staged by the build: any FlashInfer tree
    with pytest.raises(sm.BuildError, match="0001-bad.patch does not apply to FlashInfer 0.5.3"):
        sm.stage_flashinfer({"FLASHINFER_SOURCE_DIR": str(src)})
    assert not (tmp_path / "flashinfer").exists()


def test_a_failed_download_says_what_to_do(isolated_stage, monkeypatch):
    sm = isolated_stage
    failed = types.SimpleNamespace(returncode=1, stderr="ERROR: No matching distribution found")
    monkeypatch.setattr(sm.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(
        sm.BuildError,
        match="(?s)could not download .*No matching distribution.*FLASHINFER_SOURCE_DIR",
    ):
        sm.stage_flashinfer({})
