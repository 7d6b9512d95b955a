"""File -> documents: config files (YAML/JSON/TOML, inheritance resolved) and run folders.

Entry point: :func:`convert_path`. See :mod:`indexer.convert.core` for what a path
yields, :mod:`indexer.convert.inherit` for ``_BASE_``/Hydra/interpolation and
dependencies, :mod:`indexer.convert.runs` for run-folder layouts.
"""
from __future__ import annotations

from indexer.convert.core import convert_config_file, convert_path, run_info_document
from indexer.convert.inherit import dependants_of, resolve
from indexer.convert.runs import RECOGNISERS, recognise_folder, run_folder_of

__all__ = ["RECOGNISERS", "convert_config_file", "convert_path", "dependants_of", "recognise_folder", "resolve",
           "run_folder_of", "run_info_document"]
