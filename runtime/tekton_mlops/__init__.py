"""tekton-mlops: the runtime behind a catalog of Tekton Tasks for the ML lifecycle.

Every catalog Task step runs ``tekton-mlops <step>``; the step's parameters are
validated against ``schemas/<step>.json`` before anything else happens.
"""

__version__ = "0.1.0"
