"""Package layout that pyproject.toml cannot express: the top-level catalogs/ folder ships as the
package data of ``optimizer._catalogs`` (see pyproject.toml's package-data and loaders.catalog_root),
and scenarios/ as ``optimizer._scenarios`` (the shipped scenarios `procure serve` offers)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["optimizer", "optimizer.*"]), "optimizer._catalogs", "optimizer._scenarios"],
    package_dir={"optimizer._catalogs": "catalogs", "optimizer._scenarios": "scenarios"},
)
