"""``python -m tekton_mlops``: the same CLI as the ``tekton-mlops`` command."""

from tekton_mlops.cli import main

main()
