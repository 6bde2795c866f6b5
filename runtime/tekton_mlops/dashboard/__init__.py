"""``tekton-mlops dashboard``: a read-only web view of the runs the local executor keeps.

``runs.py`` reads a runs folder into typed views, ``layout.py`` places a graph's nodes in
layers, ``lineage.py`` reads the lineage records of an artifact folder, ``svg.py`` and
``pages.py`` render HTML on the server, ``server.py`` answers HTTP on 127.0.0.1 and
``cli.py`` is the command. ``static/`` holds the one style sheet and the one script.
"""
