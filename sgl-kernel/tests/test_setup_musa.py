"""setup_musa.py's MUSA configuration, with torch_musa simulated, and FlashInfer staging."""

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
from torchada_porter import torchada_port_in_place

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
    "env, device, arch, why",
    [
        ({}, None, "mp_31", "the default: no MUSA device visible and neither"),
        ({}, "mp_22", "mp_22", "the visible MUSA device is mp_22"),
        ({}, "mp_31", "mp_31", "the visible MUSA device is mp_31"),
        ({"MTGPU_TARGET": "mp_31"}, None, "mp_31", "MTGPU_TARGET=mp_31 (no MUSA device visible)"),
        ({"MTGPU_TARGET": "mp_22"}, None, "mp_22", "MTGPU_TARGET=mp_22 (no MUSA device visible)"),
        (
            {"TORCH_MUSA_ARCH_LIST": "22"},
            None,
            "mp_22",
            "TORCH_MUSA_ARCH_LIST=22 (no MUSA device visible)",
        ),
        (
            {"MTGPU_TARGET": "mp_22", "TORCH_MUSA_ARCH_LIST": "22"},
            "mp_22",
            "mp_22",
            "the visible MUSA device is mp_22, as MTGPU_TARGET=mp_22 asks",
        ),
        (
            {"MTGPU_TARGET": "mp_31", "SGL_KERNEL_MUSA_ARCH_OVERRIDE": "1"},
            "mp_22",
            "mp_31",
            "MTGPU_TARGET=mp_31, overriding the visible device mp_22",
        ),
        (
            {"TORCH_MUSA_ARCH_LIST": "22", "SGL_KERNEL_MUSA_ARCH_OVERRIDE": "1"},
            "mp_31",
            "mp_22",
            "TORCH_MUSA_ARCH_LIST=22, overriding the visible device mp_31",
        ),
    ],
    ids=[
        "default-without-device",
        "s4000-visible",
        "s5000-visible",
        "target-s5000",
        "target-s4000",
        "arch-list-s4000",
        "variables-agree-with-device",
        "override-target",
        "override-arch-list",
    ],
)
def test_musa_arch_selection(sm, env, device, arch, why):
    chosen, reason = sm.musa_arch_choice(env, device)
    assert (chosen, sm.musa_arch(env, device)) == (arch, arch)
    assert reason.startswith(why)
    line = sm.arch_log_line(chosen, reason)
    assert line.startswith(f"setup_musa.py: building for {arch} ({sm.MUSA_ARCHS[arch]}): {why}")


@pytest.mark.parametrize(
    "env, device, named",
    [
        ({"MTGPU_TARGET": "mp_31"}, "mp_22", ("MTGPU_TARGET=mp_31", "mp_22")),
        ({"MTGPU_TARGET": "mp_22"}, "mp_31", ("MTGPU_TARGET=mp_22", "mp_31")),
        ({"TORCH_MUSA_ARCH_LIST": "31"}, "mp_22", ("TORCH_MUSA_ARCH_LIST=31", "mp_22")),
        (
            {"MTGPU_TARGET": "mp_31", "TORCH_MUSA_ARCH_LIST": "31"},
            "mp_22",
            ("MTGPU_TARGET=mp_31", "mp_22"),
        ),
        (
            {"MTGPU_TARGET": "mp_31", "SGL_KERNEL_MUSA_ARCH_OVERRIDE": "0"},
            "mp_22",
            ("MTGPU_TARGET=mp_31", "mp_22"),
        ),
    ],
    ids=["target-on-s4000", "target-on-s5000", "arch-list", "serving-image", "override-not-1"],
)
def test_variables_that_disagree_with_the_device_stop_the_build(sm, env, device, named):
    """The serving image case: MTGPU_TARGET=mp_31 and TORCH_MUSA_ARCH_LIST=31 on an S4000."""
    variable, visible = named
    with pytest.raises(sm.BuildError) as err:
        sm.musa_arch_choice(env, device)
    message = str(err.value)
    assert variable in message and f"the visible MUSA device is {visible}" in message
    assert "SGL_KERNEL_MUSA_ARCH_OVERRIDE=1" in message


def test_the_two_variables_disagreeing_stop_the_build(sm):
    with pytest.raises(
        sm.BuildError, match=r"TORCH_MUSA_ARCH_LIST='31' disagrees with MTGPU_TARGET='mp_22'"
    ):
        sm.musa_arch_choice({"MTGPU_TARGET": "mp_22", "TORCH_MUSA_ARCH_LIST": "31"}, None)
    with pytest.raises(sm.BuildError, match=r"TORCH_MUSA_ARCH_LIST='22;31' names 2 archs"):
        sm.musa_arch_choice({"TORCH_MUSA_ARCH_LIST": "22;31"}, None)


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


def test_torchada_versions_other_than_the_checked_one_stop_the_build(sm):
    assert sm.check_torchada_version("0.1.103", {}) is None
    for version in ("0.1.68", "0.2.0", "0.1.103.post1"):
        with pytest.raises(
            sm.BuildError,
            match=rf"torchada {version} is not the checked 0.1.103.*SGL_KERNEL_MUSA_PORT_OVERRIDE=1",
        ):
            sm.check_torchada_version(version, {})
        warning = sm.check_torchada_version(version, {"SGL_KERNEL_MUSA_PORT_OVERRIDE": "1"})
        assert "warning: torchada" in warning and "not the checked 0.1.103" in warning


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
    rules = sm.with_port_rules(TorchadaLike, Path("/nonexistent"))().get_mapping_rule()
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


def test_musa_configuration_with_torch_musa_simulated(sm, monkeypatch, tmp_path, capsys):
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

    # setitem first, so the undo removes the fake module monkeypatch.delitem alone would
    # leave behind when torchada was not imported yet (and find_spec("torchada") would
    # then find the fake in later tests)
    monkeypatch.setitem(sys.modules, "torchada", None)
    monkeypatch.delitem(sys.modules, "torchada")
    monkeypatch.setattr(sys, "meta_path", [FakeTorchada()] + sys.meta_path)
    monkeypatch.setattr(sm, "is_musa_host", lambda: True)
    monkeypatch.setattr(sm, "visible_musa_arch", lambda: "mp_22")  # an S4000 host
    monkeypatch.setattr("importlib.metadata.version", lambda name: "0.1.103")
    monkeypatch.setattr(sm, "torch_musa_mapping_dir", lambda: None)
    monkeypatch.setenv("TORCH_MUSA_ARCH_LIST", "")  # recorded, so the test's value is undone
    monkeypatch.delenv("TORCH_MUSA_ARCH_LIST")
    before = tracked_tree_digest()

    ext, cmdclass = sm.extension_and_cmdclass({})  # no MTGPU_TARGET: the device decides
    assert capsys.readouterr().out.splitlines() == [
        "setup_musa.py: building for mp_22 (MTT S4000): the visible MUSA device is mp_22"
    ]

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


def test_restaging_follows_changed_source_headers(isolated_stage, tmp_path):
    """With FLASHINFER_SOURCE_DIR the stamp hashes the headers: the same path with a
    changed header restages, an unchanged one reuses the stage."""
    sm = isolated_stage
    source = tmp_path / "src"
    pristine = source / "include" / "flashinfer"
    pristine.mkdir(parents=True)
    with zipfile.ZipFile(REPO / "3rdparty" / ".cache" / sm.FLASHINFER_WHEEL) as zf:
        for name in sm.FLASHINFER_HEADERS:
            (pristine / name).write_bytes(zf.read(sm.WHEEL_HEADER_PREFIX + name))
    env = {"FLASHINFER_SOURCE_DIR": str(source)}
    staged = sm.stage_flashinfer(env) / "flashinfer" / "utils.cuh"
    stamp = (tmp_path / "flashinfer" / "STAGED_FROM").read_text()
    assert f"header utils.cuh {sm._sha256(source / 'include/flashinfer/utils.cuh')}" in stamp
    staged.write_text(staged.read_text() + "// edited in the stage\n")
    sm.stage_flashinfer(env)  # unchanged source: the stage is reused as it is
    assert staged.read_text().endswith("// edited in the stage\n")
    header = source / "include" / "flashinfer" / "utils.cuh"
    header.write_text(header.read_text() + "// changed upstream\n")
    sm.stage_flashinfer(env)
    assert staged.read_text().endswith("// changed upstream\n")


# ------------------------------------------------------------------ torchada's skip rules

# Runs torchada 0.1.103's own functions (in a subprocess: importing torchada patches torch)
# over the same cases: the system-path test of BuildExtension._is_system_include_dir (a
# method of a class torchada only defines with torch_musa present, so its condition is
# restated from the installed source) and its TORCHADA_EXCLUDE_DIRS reader.
TORCHADA_SKIPS = r"""
import json, os, sys
import torchada.utils.cpp_extension as ce

results = []
for path, value in json.loads(sys.argv[1]):
    os.environ["TORCHADA_EXCLUDE_DIRS"] = value
    real = os.path.realpath(os.path.abspath(path))
    system = (real.startswith("/usr/") or real.startswith("/opt/")
              or "site-packages" in real or "dist-packages" in real)
    results.append(bool(system or ce._is_configured_exclude_dir(real)))
print(json.dumps(results))
"""


def test_torchada_skip_rules_match_torchadas_own(sm, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "sglang" / "build").mkdir(parents=True)
    package = tmp_path / "pkgs" / "vendored_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    link = tmp_path / "link"
    link.symlink_to(home / "sglang")
    env = {
        "HOME": str(home),
        "STAGE_ROOT": str(home / "sglang"),
        "PYTHONPATH": str(tmp_path / "pkgs"),
        "PATH": os.environ["PATH"],
    }
    build = str(home / "sglang" / "build")
    cases = [
        (build, ""),
        (build, "~/sglang"),
        (build, "~"),
        (build, "$STAGE_ROOT"),
        (build, "${STAGE_ROOT}/build"),
        (build, "$UNSET_VARIABLE/x"),
        (build, "sglang"),
        (build, "build,other"),
        (build, f"/nowhere{os.pathsep}sglang"),
        (build, str(home / "sglang" / "build" / "deeper")),  # the stage contains a root
        (build, str(home / "other")),
        (str(link / "build"), str(home / "sglang")),  # symlinks resolved
        (str(package / "x"), "vendored_pkg"),  # an importable module's directory
        (str(tmp_path / "pkgs" / "y"), "vendored_pkg"),
        (build, "no_such_module_here"),
        ("/opt/x/build", ""),
        (str(tmp_path / "site-packages-like" / "b"), ""),
    ]
    result = subprocess.run(
        [sys.executable, "-c", TORCHADA_SKIPS, json.dumps(cases)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = json.loads(result.stdout.splitlines()[-1])
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.chdir(tmp_path)
    ours = [
        sm.torchada_skips(Path(path), {**env, "TORCHADA_EXCLUDE_DIRS": value})
        for path, value in cases
    ]
    assert ours == theirs
    assert theirs == [False, True, True, True, True, False, True, True, True, True, False] + [
        True,
        True,
        False,
        False,
        True,
        True,
    ]


# ------------------------------------------------------------------ the build's port checks


@pytest.fixture
def musa_stage(sm, tmp_path):
    return sm.stage_musa_sources(sm.stage_flashinfer({}), tmp_path / "stage")


class RecordingBuild:
    """Stands for torchada's BuildExtension after its in-place port: build_extensions()
    is what compiles."""

    built = 0

    def build_extensions(self):
        type(self).built += 1


@pytest.mark.skipif(importlib.util.find_spec("torchada") is None, reason="needs torchada")
def test_the_build_compiles_a_stage_torchada_ported_and_the_lint_passes(sm, musa_stage, capsys):
    torchada_port_in_place(musa_stage, sm.EXTRA_PORT_RULES)
    assert sm.lint_ported_stage(musa_stage) == []
    build = sm.with_port_rules(RecordingBuild, musa_stage)
    build.built = 0
    build().build_extensions()
    assert build.built == 1
    assert "porting lint: 0 findings in the ported stage" in capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("torchada") is None, reason="needs torchada")
def test_the_build_stops_on_a_mis_ported_stage(sm, musa_stage):
    """Unported, or ported without our extra rules, or with a construct planted after the
    port: the build stops before compiling and names the findings."""
    build = sm.with_port_rules(RecordingBuild, musa_stage)
    build.built = 0
    with pytest.raises(SystemExit, match=r"fail the porting lint \((\d{3}) finding\(s\)\)"):
        build().build_extensions()  # not ported at all

    torchada_port_in_place(musa_stage, {})  # torchada without EXTRA_PORT_RULES
    findings = sm.lint_ported_stage(musa_stage)
    assert {f.rule for f in findings} == {"cuda-left"}
    assert any("cudaLaunchKernel" in f.text for f in findings)
    with pytest.raises(SystemExit, match=r"cuda-left.*cudaLaunchKernel"):
        build().build_extensions()
    assert build.built == 0


@pytest.mark.skipif(importlib.util.find_spec("torchada") is None, reason="needs torchada")
def test_a_warp_width_assumption_in_the_ported_stage_stops_the_build(sm, musa_stage):
    header = musa_stage / "csrc" / "sampling" / "seeded_sampling.cuh"
    header.write_text(
        header.read_text().replace(
            "  const uint32_t tid = threadIdx.x;\n",
            "  const uint32_t tid = threadIdx.x & 127;\n",
            1,
        )
    )
    torchada_port_in_place(musa_stage, sm.EXTRA_PORT_RULES)
    findings = sm.lint_ported_stage(musa_stage)
    assert [(f.path, f.rule) for f in findings] == [
        ("csrc/sampling/seeded_sampling.cuh", "lane-mask")
    ]


def write_mapping(directory: Path, tables: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rules in tables.items():
        (directory / name).write_text(json.dumps(rules))
    return directory


def verified_tables():
    data = json.loads((KERNEL_DIR / "tools" / "torch_musa_mapping.json").read_text())
    return {t["file"]: dict(t["rules"]) for t in data["tables"]}


def test_the_torch_musa_tables_the_tree_was_checked_with_pass(sm, musa_stage, tmp_path):
    tables = verified_tables()
    tables["include.json"]["cublas_v2.h"] = "mublas.h"  # left out on purpose: not ours
    tables["general.json"] = {"cuda": "musa"}  # SimplePorting does not load it
    tables["dnn-naming.json"] = {"cudnnHandle_t": "mudnnHandle_t"}  # names we never use
    mapping = write_mapping(tmp_path / "mapping", tables)
    assert sm.torch_musa_mapping_differences(mapping, musa_stage) == []
    assert sm.check_torch_musa_mapping(musa_stage, {}, mapping) is None


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda t: t["extra.json"].update(CUDAGuard="OtherGuard"),
            "extra.json: 'CUDAGuard' -> 'OtherGuard'",
        ),
        (
            lambda t: t["extra.json"].pop("PhiloxCudaState"),
            "extra.json: no rule for 'PhiloxCudaState'",
        ),
        (
            lambda t: t["extra.json"].update(newRule="x"),
            "extra.json: a rule the tree was not checked with: 'newRule'",
        ),
        (
            lambda t: t["include.json"].update({"cuda_fp16.h": "x.h"}),
            "include.json: 'cuda_fp16.h' -> 'x.h'",
        ),
        (
            lambda t: t["include.json"].update(curand_kernel="x"),
            "include.json: a rule the tree was not checked with: 'curand_kernel'",
        ),
        (lambda t: t.pop("include.json"), "include.json: missing"),
        (
            lambda t: t.update({"new.json": {"getCurrentCUDAStream(": "x("}}),
            "new.json: a table the tree was not checked with",
        ),
    ],
    ids=[
        "changed",
        "removed",
        "added-to-complete",
        "changed-header",
        "added-hit",
        "missing",
        "new-table",
    ],
)
def test_other_torch_musa_tables_stop_the_build(sm, musa_stage, tmp_path, change, expected):
    tables = verified_tables()
    change(tables)
    mapping = write_mapping(tmp_path / "mapping", tables)
    differences = sm.torch_musa_mapping_differences(mapping, musa_stage)
    assert len(differences) == 1 and differences[0].startswith(expected), differences
    with pytest.raises(
        sm.BuildError,
        match=r"(?s)differ from the ones this tree was checked.*SGL_KERNEL_MUSA_PORT_OVERRIDE=1",
    ):
        sm.check_torch_musa_mapping(musa_stage, {}, mapping)
    warning = sm.check_torch_musa_mapping(
        musa_stage, {"SGL_KERNEL_MUSA_PORT_OVERRIDE": "1"}, mapping
    )
    assert "warning" in warning and expected in warning


def test_torch_musa_mapping_dir_is_found_without_importing(sm, tmp_path, monkeypatch):
    if importlib.util.find_spec("torch_musa") is None:  # a CPU host
        assert sm.torch_musa_mapping_dir() is None
    package = tmp_path / "torch_musa"
    (package / "utils" / "mapping").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.delitem(sys.modules, "torch_musa", raising=False)  # restored if it was there
    monkeypatch.syspath_prepend(str(tmp_path))
    assert sm.torch_musa_mapping_dir() == package / "utils" / "mapping"
    assert "torch_musa" not in sys.modules
