"""Compiling a pipeline written with the ``kfp`` SDK into its IR (``file.py:function``).

The ``kfp`` package is an optional extra (``pip install 'tekton-mlops[kfp]'``): it is
imported here only, when a Python file is given. The module is loaded from its path
with its folder first on ``sys.path`` (so its sibling modules import), the pipeline
function found by name and compiled by KFP's own compiler.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from tekton_mlops.kfp.errors import CompileError

INSTALL_HINT = "pip install 'tekton-mlops[kfp]'"


def _kfp_compiler() -> Any:
    try:
        return importlib.import_module("kfp.compiler")
    except ImportError:
        raise CompileError(
            f"compiling a Python pipeline needs the kfp SDK ({INSTALL_HINT})"
        ) from None


def split_target(target: str) -> tuple[Path, str] | None:
    """``pipelines/train.py:train_pipeline`` -> (path, function); None for an IR file."""
    path, sep, function = target.rpartition(":")
    if sep and path.endswith(".py") and function.isidentifier():
        return Path(path), function
    if target.endswith(".py"):
        raise CompileError(f"{target}: name the pipeline function too, as {target}:function")
    return None


def load_function(path: Path, function: str) -> Any:
    if not path.is_file():
        raise CompileError(f"{path}: no such file")
    compiler = _kfp_compiler()
    del compiler
    name = f"_tekton_mlops_kfp_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CompileError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        with warnings.catch_warnings():
            # The default base image warning: lightweight components run in the runtime
            # image here whatever their base image says.
            warnings.simplefilter("ignore", FutureWarning)
            spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's module: any failure is theirs
        raise CompileError(f"{path}: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(folder)
    found = getattr(module, function, None)
    if found is None:
        raise CompileError(f"{path} has no {function}")
    return found


def compile_function(pipeline: Any, label: str = "the pipeline") -> str:
    """The IR YAML the kfp SDK compiles for a ``@dsl.pipeline`` function."""
    compiler = _kfp_compiler()
    with tempfile.TemporaryDirectory(prefix="tekton-mlops-kfp-") as folder:
        target = Path(folder) / "pipeline.yaml"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                compiler.Compiler().compile(pipeline, str(target))
        except Exception as exc:  # noqa: BLE001 - KFP's compiler refuses in its own words
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise CompileError(f"the kfp SDK cannot compile {label}: {detail}") from None
        return target.read_text()


def compile_file(path: Path, function: str) -> str:
    return compile_function(load_function(path, function), f"{path}:{function}")
