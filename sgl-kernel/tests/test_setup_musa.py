"""setup_musa.py's MUSA configuration, with torch_musa simulated, and FlashInfer staging."""

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
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
    "env, device, arch",
    [
        ({}, None, "mp_31"),
        ({}, "mp_22", "mp_22"),
        ({}, "mp_31", "mp_31"),
        ({"MTGPU_TARGET": "mp_31"}, None, "mp_31"),
        ({"MTGPU_TARGET": "mp_22"}, None, "mp_22"),
        ({"MTGPU_TARGET": "mp_31"}, "mp_22", "mp_31"),
    ],
    ids=[
        "default-without-device",
        "s4000-visible",
        "s5000-visible",
        "target-s5000",
        "target-s4000",
        "target-wins-over-device",
    ],
)
def test_musa_arch_selection(sm, env, device, arch):
    assert sm.musa_arch(env, device) == arch


@pytest.mark.parametrize("target", ["mp_21", "sm_90", ""])
def test_unsupported_musa_arch_is_a_clear_error(sm, target):
    with pytest.raises(
        sm.BuildError,
        match=rf"MTGPU_TARGET='{target}' is not supported; use one of: mp_31 \(MTT S5000\), mp_22 \(MTT S4000\)",
    ):
        sm.musa_arch({"MTGPU_TARGET": target})


def test_an_unsupported_visible_device_is_a_clear_error(sm):
    with pytest.raises(
        sm.BuildError, match=r"the visible MUSA device \(mp_21\) is not supported; use one of"
    ):
        sm.musa_arch({}, "mp_21")


@pytest.mark.parametrize(
    "arch, preset, value",
    [("mp_31", None, "31"), ("mp_22", None, "22"), ("mp_22", "22", "22"), ("mp_31", "31", "31")],
    ids=["s5000", "s4000", "s4000-preset-agrees", "s5000-preset-agrees"],
)
def test_torch_musa_arch_list_names_the_same_arch(sm, arch, preset, value):
    env = {} if preset is None else {"TORCH_MUSA_ARCH_LIST": preset}
    assert sm.torch_musa_arch_list(arch, env) == value


@pytest.mark.parametrize(
    "preset", ["31", "21;22", "22;31"], ids=["other-arch", "two-archs", "extra-arch"]
)
def test_a_conflicting_torch_musa_arch_list_is_a_clear_error(sm, preset):
    with pytest.raises(
        sm.BuildError,
        match=rf"TORCH_MUSA_ARCH_LIST='{preset}' disagrees with the target arch mp_22",
    ):
        sm.torch_musa_arch_list("mp_22", {"TORCH_MUSA_ARCH_LIST": preset})


@pytest.mark.parametrize(
    "path, env, skipped",
    [
        ("/opt/sglang/sgl-kernel/build/musa_src", {}, True),
        ("/usr/src/sglang/build/musa_src", {}, True),
        ("/home/u/.venv/lib/python3.10/site-packages/sgl/build", {}, True),
        ("/usr/local/lib/python3.10/dist-packages/x", {}, True),
        ("/home/u/sglang/sgl-kernel/build/musa_src", {}, False),
        ("/tmp/sgl-kernel-musa-src-0123", {}, False),
        ("/home/u/sglang/build", {"TORCHADA_EXCLUDE_DIRS": "/home/u/sglang"}, True),
        ("/home/u/vendored/build", {"TORCHADA_EXCLUDE_DIRS": "torch_musa,vendored"}, True),
        ("/home/u/sglang/build", {"TORCHADA_EXCLUDE_DIRS": "/home/u/other"}, False),
    ],
    ids=[
        "opt",
        "usr",
        "site-packages",
        "dist-packages",
        "home",
        "tmp",
        "excluded-root",
        "excluded-name",
        "other-exclusion",
    ],
)
def test_torchada_skipped_locations(sm, path, env, skipped):
    assert sm.torchada_skips(Path(path), env) is skipped


def test_the_stage_moves_out_of_a_location_torchada_skips(sm, monkeypatch):
    monkeypatch.setattr(sm, "KERNEL_DIR", Path("/opt/sglang/sgl-kernel"))
    monkeypatch.setattr(sm.tempfile, "gettempdir", lambda: "/tmp")
    stage = sm.musa_stage_dir({})
    assert stage.parent == Path("/tmp") and stage.name.startswith("sgl-kernel-musa-src-")
    assert sm.musa_stage_dir({"SGL_KERNEL_MUSA_STAGE_DIR": "/home/b/stage"}) == Path(
        "/home/b/stage"
    )
    monkeypatch.setattr(sm, "KERNEL_DIR", Path("/home/u/sglang/sgl-kernel"))
    assert sm.musa_stage_dir({}) == Path("/home/u/sglang/sgl-kernel/build/musa_src")


def test_a_stage_torchada_would_not_port_is_a_clear_error(sm, monkeypatch):
    with pytest.raises(
        sm.BuildError,
        match="torchada does not port sources under /opt/stage.*set SGL_KERNEL_MUSA_STAGE_DIR",
    ):
        sm.musa_stage_dir({"SGL_KERNEL_MUSA_STAGE_DIR": "/opt/stage"})
    monkeypatch.setattr(sm, "KERNEL_DIR", Path("/opt/sglang/sgl-kernel"))
    monkeypatch.setattr(sm.tempfile, "gettempdir", lambda: "/usr/tmp")
    with pytest.raises(sm.BuildError, match="torchada does not port sources under /opt/sglang"):
        sm.musa_stage_dir({})


@pytest.mark.parametrize("version", ["0.1.56", "0.1.67", "0.0.9"])
def test_a_torchada_without_in_place_porting_is_refused(sm, version):
    with pytest.raises(sm.BuildError, match=rf"torchada {version} is too old: before 0.1.68"):
        sm.check_torchada_version(version)


def test_torchada_versions_other_than_the_checked_one_warn(sm):
    assert sm.check_torchada_version("0.1.103") is None
    assert "not the checked 0.1.103" in sm.check_torchada_version("0.1.68")
    assert "not the checked 0.1.103" in sm.check_torchada_version("0.2.0")


def test_the_checked_torchada_is_what_the_packages_pin():
    pins = {
        name: (REPO / name).read_text()
        for name in (
            "requirements-dev.txt",
            "python/pyproject_other.toml",
            "sgl-kernel/pyproject_musa.toml",
        )
    }
    for name, text in pins.items():
        assert "torchada==0.1.103" in text, name
        assert "torchada>=" not in text, name


def test_extra_port_rules_reach_torchadas_mapping(sm):
    class TorchadaLike:  # stands for torchada's BuildExtension, which has the hook
        def get_mapping_rule(self):
            return {"cudaMalloc": "musaMalloc"}

    rules = sm.with_port_rules(TorchadaLike)().get_mapping_rule()
    assert rules == {"cudaMalloc": "musaMalloc", **sm.EXTRA_PORT_RULES}


def test_the_sampling_pieces_for_another_build_script(sm):
    parts = sm.sampling_build_parts({})
    assert parts["sources"] == ["csrc/sampling/sampling.cu"]
    assert all((KERNEL_DIR / s).is_file() for s in parts["sources"])
    include, flashinfer = (Path(d) for d in parts["include_dirs"])
    assert (include / "sgl_kernel_musa_ops.h").is_file()
    assert ", 32);" in (flashinfer / "flashinfer" / "sampling.cuh").read_text()  # 0005


def test_importing_setup_musa_has_no_side_effects(tmp_path):
    """Upstream's build script imports it: no staging, no torch import, no output."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(KERNEL_DIR / 'setup_musa.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert 'torch' not in sys.modules and 'setuptools' not in sys.modules\n"
    )
    before = sorted(p.name for p in (REPO / "3rdparty").iterdir())
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert sorted(p.name for p in (REPO / "3rdparty").iterdir()) == before
    assert list(tmp_path.iterdir()) == []


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
    monkeypatch.setattr(sm, "visible_musa_arch", lambda: "mp_22")  # an S4000 host
    monkeypatch.setattr("importlib.metadata.version", lambda name: "0.1.103")
    monkeypatch.setenv("TORCH_MUSA_ARCH_LIST", "")  # recorded, so the test's value is undone
    monkeypatch.delenv("TORCH_MUSA_ARCH_LIST")
    before = tracked_tree_digest()

    ext, cmdclass = sm.extension_and_cmdclass({})  # no MTGPU_TARGET: the device decides

    stage = KERNEL_DIR / "build" / "musa_src"
    assert ext.name == "sgl_kernel.common_ops"
    assert all((KERNEL_DIR / s).resolve().is_relative_to(stage) for s in ext.sources)
    assert sorted(Path(s).name for s in ext.sources) == [
        "common_extension_musa.cc",
        "sampling.cu",
        "speculative_sampling.cu",
    ]
    assert any(str(d).endswith("flashinfer_include") for d in ext.include_dirs)
    assert (stage / "flashinfer_include" / "flashinfer" / "sampling.cuh").is_file()
    flags = ext.extra_compile_args
    assert "force_mcc" in flags["cxx"] and "-DUSE_MUSA" in flags["cxx"]
    assert flags["nvcc"][:4] == ["-x", "musa", "-mtgpu", "-O3"]
    assert [f for f in flags["nvcc"] if "arch" in f] == ["--cuda-gpu-arch=mp_22"]
    assert "-ffast-math" not in flags["nvcc"] and "-fno-strict-aliasing" in flags["nvcc"]
    assert not [f for f in flags["nvcc"] if f.startswith(("--expt", "-gencode", "-U__CUDA"))]
    assert os.environ["TORCH_MUSA_ARCH_LIST"] == "22"  # torch_musa adds no second arch
    assert "build_ext" in cmdclass
    assert imported == ["torchada"]

    # torchada ports sources in place: do that to the staged copy, as the build would.
    for path in stage.rglob("*.cu*"):
        path.write_text(path.read_text().replace("cuda", "musa"))
    assert tracked_tree_digest() == before


def test_cuda_configuration_uses_the_checkout_sources(sm, monkeypatch):
    monkeypatch.setattr(sm, "is_musa_host", lambda: False)
    kwargs = sm.cuda_extension_kwargs(sm.stage_flashinfer({}))
    assert kwargs["sources"] == [
        "csrc/common_extension_musa.cc",
        "csrc/sampling/sampling.cu",
        "csrc/speculative/speculative_sampling.cu",
    ]
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
