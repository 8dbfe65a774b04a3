"""MLflow model URIs as algorithm parameters: ``model=models:/<name>/<version>`` (or
``models:/<name>@<alias>``, or ``models:/<model id>`` for one that was not registered) for a network
``stylegrid train-*`` logged.

The tracking store is only reachable from the driver's node (see ``train.TrackingRelay``), so
the driver resolves each URI once (``resolve_locations``) to where the model's files are (the
artifact store: a folder on one machine, ``s3://...`` on a cluster), and each worker copies
them from there into its cache (``localize``) and hands the algorithm a local file. The
parameter recorded in the results stays the URI the user wrote.

The files are the ones ``stylegrid train-*`` puts in the model (``extra_files``): the state dict
(``network.pth``, ``decoder.pth``) and its ``.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..storage import locations as storage
from ..storage.location import Location

SCHEME = "models:/"


def is_model_uri(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SCHEME)


def model_uris(values: Iterable[Mapping[str, Any]]) -> list[str]:
    """The MLflow model URIs among parameter values (each parameter dict of a sweep or catalog)."""
    return sorted({v for params in values for v in params.values() if is_model_uri(v)})


@contextlib.contextmanager
def mlflow_at(tracking_uri: str):
    """MLflow's global tracking (and so registry) URI set to ``tracking_uri`` for the block."""
    import mlflow

    # set_tracking_uri also sets MLFLOW_TRACKING_URI in the environment (for subprocesses): put
    # back exactly what was there, not get_tracking_uri()'s default, which would then stay set
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(previous)  # None unsets both


def resolve_locations(uris: Iterable[str], tracking_uri: str) -> dict[str, str]:
    """{URI: the folder (path or URI) holding its files}; ``ValueError`` naming a URI the
    tracking store does not know or a model without stylegrid's files."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    found: dict[str, str] = {}
    for uri in uris:
        try:
            with mlflow_at(tracking_uri):
                base = ModelsArtifactRepository.get_underlying_uri(uri)
        except MlflowException as e:
            raise ValueError(f"{uri}: not found in the MLflow store {tracking_uri} ({e.message})") from None
        folder = storage.join(_as_location(base), "extra_files")
        if not any(f.endswith(".pth") for f in storage.list_files(folder)):
            raise ValueError(
                f"{uri}: the model has no stylegrid network files ({folder}); was it logged by stylegrid train-*?"
            )
        found[uri] = folder
    return found


def _as_location(artifact_uri: str) -> str:
    """An artifact URI as ``storage`` reads it (``file:`` URIs as paths)."""
    if artifact_uri.startswith("file:"):
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(artifact_uri).path)
    return artifact_uri


def local_model_file(location: str) -> str:
    """The ``.pth`` file in the folder ``location`` (with its ``.json``) on this machine: copied
    into stylegrid's cache first when the folder is on an object store."""
    folder = Location.of(location)
    weights = [f for f in folder.files() if f.name.endswith(".pth")]
    if len(weights) != 1:
        raise ValueError(f"{location}: expected one .pth file, found {len(weights)}")
    return str(folder.local_folder("models") / weights[0].name)


def localize(params: Any, locations: Mapping[str, str]) -> Any:
    """``params`` (an algorithm's dataclass) with each MLflow URI replaced by a local file."""
    changes = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if is_model_uri(value):
            if value not in locations:
                raise ValueError(f"{value}: an MLflow model URI this run did not resolve")
            changes[f.name] = local_model_file(locations[value])
    return dataclasses.replace(params, **changes) if changes else params


def localize_here(params: Any, tracking_uri: str | None) -> Any:
    """``localize`` in one process (``stylegrid run``): resolve and copy at once. The store is
    ``tracking_uri``, else ``MLFLOW_TRACKING_URI``."""
    uris = model_uris([{f.name: getattr(params, f.name) for f in dataclasses.fields(params)}])
    if not uris:
        return params
    store = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not store:
        raise ValueError(
            f"{uris[0]}: an MLflow model URI needs the store that holds it: set MLFLOW_TRACKING_URI"
        )
    return localize(params, resolve_locations(uris, store))
