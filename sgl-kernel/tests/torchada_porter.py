"""torchada 0.1.103's real in-place porter, run over a directory on a CPU host.

torchada's BuildExtension ports through torch_musa's SimplePorting, which is not
installable here: the script stands in for SimplePorting as it behaves (a mirror made
at init, its JSON tables merged over the given rules with dict.update, longest key first,
modify_file on every file) and lets torchada's own patches and in-place porter do the
rest. It runs in a subprocess because importing torchada patches torch.
"""

import json
import subprocess
import sys
from pathlib import Path

TORCH_MUSA_MAPPING = Path(__file__).resolve().parents[1] / "tools" / "torch_musa_mapping.json"

PORT_SCRIPT = r"""
import json, os, sys, types
import torchada.utils.cpp_extension as ce

root, mapping_file, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
tables = json.load(open(mapping_file))["tables"]


class SimplePorting:
    # torch_musa.utils.simple_porting.SimplePorting as it behaves (torch_musa is not
    # installable here): a mirror directory made at init, its JSON tables merged over
    # the given rules with dict.update, longest key first, modify_file on every file.
    def __init__(self, cuda_dir_path=None, ignore_dir_paths=None, mapping_rule=None,
                 drop_default_mapping=False, mapping_dir_path=None):
        self.cuda_dir_path = cuda_dir_path
        self.mapping_rule = mapping_rule
        name = os.path.basename(cuda_dir_path) + "_musa"
        self.musa_dir_path = os.path.realpath(os.path.join(cuda_dir_path, "..", name))
        os.makedirs(self.musa_dir_path, exist_ok=True)

    def load_replaced_mapping(self):
        for table in tables:
            self.mapping_rule.update(table["rules"])
        self.mapping_rule = sorted(self.mapping_rule.items(), key=lambda kv: len(kv[0]), reverse=True)
        print(self.mapping_rule)  # torch_musa prints it; torchada's patch swallows it

    def run(self):
        self.load_replaced_mapping()
        for top, _, files in os.walk(self.cuda_dir_path):
            rel = os.path.relpath(top, self.cuda_dir_path)
            for name in files:
                self.modify_file(os.path.join(top, name), os.path.join(self.musa_dir_path, rel, name))


musa_sp = types.ModuleType("torch_musa.utils.simple_porting")
musa_sp.SimplePorting = SimplePorting
ce._patch_simple_porting_load_replaced_mapping(musa_sp)
ce._patch_simple_porting_open(musa_sp)
ce._patch_simple_porting_modify_file(musa_sp)
rules = {**ce._MAPPING_RULE, **extra}  # what BuildExtension.get_mapping_rule() returns with ours
ce._create_in_place_porter(musa_sp, os.path.realpath(root), rules).run()
"""


def torchada_port_in_place(tree: Path, extra_rules: dict, mapping: Path = TORCH_MUSA_MAPPING):
    """Port `tree` in place with torchada's rules plus `extra_rules` and torch_musa's tables."""
    result = subprocess.run(
        [sys.executable, "-c", PORT_SCRIPT, str(tree), str(mapping), json.dumps(extra_rules)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
