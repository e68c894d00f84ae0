"""Importers: models made by other tools turned into shipyard packages.

``mlflow``: an MLflow model directory or ``runs:/`` URI (``import_mlflow``). The files are
read here (``mlflow_dir``, ``mlflow_schema``, ``mlflow_example``, ``mlflow_runs``), the model
loaded per flavour (``mlflow_flavours``, pickles only with trust) and packaged by
``runtimes.packager``.
"""

from shipyard.importers.mlflow_dir import NotAnMlflowModelError, UnsupportedFlavourError
from shipyard.importers.mlflow_import import MlflowImport, import_mlflow, locate, trust_decision

__all__ = ["MlflowImport", "NotAnMlflowModelError", "UnsupportedFlavourError",
           "import_mlflow", "locate", "trust_decision"]
