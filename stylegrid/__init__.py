"""stylegrid: distributed experiments for neural style transfer.

One import namespace over the two top-level folders the project keeps: ``stylegrid.algorithms``
(``algorithms/``: pure PyTorch, the style-transfer methods) and ``stylegrid.orchestrator``
(``orchestrator/``: specs, Ray, MLflow, Parquet, the command line). ``python -m stylegrid`` runs
the command line (the ``ray job submit`` entrypoint).

How the folders become sub-packages (docs/architecture.md, "Packaging"): an installed wheel maps
them with setuptools' ``package-dir`` (site-packages/stylegrid/algorithms/...). A source tree that
is not installed, such as the working directory ``ray job submit --working-dir .`` ships to a
node, has them beside this package: ``_SourceTree`` finds ``stylegrid.algorithms`` and
``stylegrid.orchestrator`` there. Before the namespace the two were top-level packages named
``algorithms`` and ``orchestrator``, and MLflow models logged then were pickled with those class
paths: ``_Legacy`` answers the old names with the new modules (one module object under both
names), so those models keep loading.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path

PACKAGES = ("algorithms", "orchestrator")
_HERE = Path(__file__).resolve().parent

# modules that moved when the folders were split into sub-packages: old name -> new (under stylegrid)
MOVED = {
    "algorithms.color": "algorithms.shared.color",
    "algorithms.device": "algorithms.shared.device",
    "algorithms.memo": "algorithms.shared.memo",
    "algorithms.memory": "algorithms.shared.memory",
    "algorithms.tiling": "algorithms.shared.tiling",
    "algorithms.regions": "algorithms.shared.regions",
    "algorithms.losses": "algorithms.shared.losses",
    "algorithms.vgg": "algorithms.shared.vgg",
    "algorithms.parameters": "algorithms.shared.parameters",
    "algorithms.metrics": "algorithms.shared.metrics",
    "algorithms.patch_swap": "algorithms.shared.patches",
    "algorithms.optimize": "algorithms.optimization.loop",
    "algorithms.optimize_tiles": "algorithms.optimization.tiles",
    "algorithms.lbfgs": "algorithms.optimization.lbfgs",
    "algorithms.gatys": "algorithms.optimization.gatys",
    "algorithms.histogram": "algorithms.optimization.histogram",
    "algorithms.mrf": "algorithms.optimization.mrf",
    "algorithms.mrf_regions": "algorithms.optimization.mrf",
    "algorithms.adain_optimize": "algorithms.optimization.adain_optimize",
    "algorithms.style_swap_optimize": "algorithms.optimization.style_swap_optimize",
    "algorithms.adain": "algorithms.feedforward.adain.network",
    "algorithms.adain_tiles": "algorithms.feedforward.adain.tiles",
    "algorithms.adain_regions": "algorithms.feedforward.adain.regions",
    "algorithms.johnson": "algorithms.feedforward.johnson.algorithm",
    "algorithms.johnson_tiles": "algorithms.feedforward.johnson.tiles",
    "algorithms.style_network": "algorithms.feedforward.johnson.network",
    "algorithms.style_swap": "algorithms.feedforward.style_swap.algorithm",
    "algorithms.swap_inverse": "algorithms.feedforward.style_swap.inverse",
    "algorithms.wct": "algorithms.feedforward.wct.algorithm",
    "algorithms.wct_decoders": "algorithms.feedforward.wct.decoders",
    "algorithms.wct_tiles": "algorithms.feedforward.wct.tiles",
    "algorithms.wct_regions": "algorithms.feedforward.wct.regions",
    "algorithms.whitening": "algorithms.feedforward.wct.whitening",
    "algorithms.video": "algorithms.video.stylize",
    "algorithms.temporal": "algorithms.video.temporal",
    "orchestrator.files": "orchestrator.storage.files",
    "orchestrator.lock": "orchestrator.storage.lock",
    "orchestrator.storage": "orchestrator.storage.locations",
    "orchestrator.tracking": "orchestrator.tracking.tracker",
    "orchestrator.models": "orchestrator.tracking.model_uris",
    "orchestrator.results": "orchestrator.results.rows",
    "orchestrator.report": "orchestrator.report.html",
    "orchestrator.pictures": "orchestrator.report.pictures",
    "orchestrator.spec": "orchestrator.specs.sweep",
    "orchestrator.train_spec": "orchestrator.specs.train",
    "orchestrator.jobs": "orchestrator.sweep.jobs",
    "orchestrator.region_jobs": "orchestrator.sweep.region_jobs",
    "orchestrator.regions": "orchestrator.sweep.regions",
    "orchestrator.worker": "orchestrator.sweep.worker",
    "orchestrator.sink": "orchestrator.sweep.sink",
    "orchestrator.halving": "orchestrator.sweep.halving",
    "orchestrator.mirror": "orchestrator.sweep.mirror",
    "orchestrator.sweep": "orchestrator.sweep.driver",
    "orchestrator.catalog": "orchestrator.catalog.driver",
    "orchestrator.catalog_manifest": "orchestrator.catalog.manifest",
    "orchestrator.catalog_pipeline": "orchestrator.catalog.pipeline",
    "orchestrator.catalog_local": "orchestrator.catalog.local",
    "orchestrator.train": "orchestrator.train.driver",
    "orchestrator.train_data": "orchestrator.train.data",
    "orchestrator.train_recipes": "orchestrator.train.recipes",
    "orchestrator.train_checkpoints": "orchestrator.train.checkpoints",
    "orchestrator.train_held_out": "orchestrator.train.held_out",
    "orchestrator.video": "orchestrator.video.driver",
    "orchestrator.video_io": "orchestrator.video.clips",
    "orchestrator.video_segments": "orchestrator.video.segments",
}


def legacy_target(name: str) -> str | None:
    """The module (under ``stylegrid``) that answers a pre-namespace module name, or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    return f"{__name__}.{MOVED.get(name, name)}"


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        pass  # the target module is already executed


class _Legacy(importlib.abc.MetaPathFinder):
    """``algorithms.*`` and ``orchestrator.*`` as the modules of ``stylegrid`` they became."""

    def find_spec(self, fullname, path=None, target=None):
        new = legacy_target(fullname)
        if new is None:
            return None
        found = importlib.util.find_spec(new)
        if found is None:
            return None
        return importlib.util.spec_from_loader(
            fullname, _Alias(new), is_package=found.submodule_search_locations is not None
        )


class _SourceTree(importlib.abc.MetaPathFinder):
    """``stylegrid.algorithms`` / ``stylegrid.orchestrator`` from the folders beside this package
    when they are not inside it (a source tree, not an installed wheel)."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in PACKAGES or (_HERE / name).is_dir():
            return None
        folder = _HERE.parent / name
        if not (folder / "__init__.py").is_file():
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def _install(finder: type) -> None:
    if not any(isinstance(f, finder) for f in sys.meta_path):
        sys.meta_path.insert(0, finder())


_install(_SourceTree)
_install(_Legacy)
