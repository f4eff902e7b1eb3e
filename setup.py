"""Package list: npusim's own packages plus the data folders archs/ and graphs/, which
pyproject.toml maps to npusim.archs and npusim.graphs (find_packages cannot see a mapped dir)."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["npusim", "npusim.*"])
      + ["npusim.archs", "npusim.graphs"])
