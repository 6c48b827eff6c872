"""Ships the top-level playbooks/ (the source of truth people edit and read) inside the package.

pyproject.toml holds all metadata; this only adds one build step: playbooks/*.yaml are copied into the wheel as
canteen_ops/playbooks/shipped/, where `playbook list` and `playbook run NAME` find them after a plain
`pip install .` (from any directory, e.g. cron). A checkout reads playbooks/ directly.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithPlaybooks(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "canteen_ops" / "playbooks" / "shipped"
        target.mkdir(parents=True, exist_ok=True)
        for src in sorted(Path(__file__).resolve().parent.joinpath("playbooks").glob("*.yaml")):
            self.copy_file(str(src), str(target / src.name))


setup(cmdclass={"build_py": BuildWithPlaybooks})
