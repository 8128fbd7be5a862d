# setuptools' PEP 517 backend runs setup.py; the build itself lives in setup_musa.py.
import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).with_name("setup_musa.py")), run_name="__main__")
