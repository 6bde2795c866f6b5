"""The record of a cut-out: who took what out of service, why and when.

One in-toto statement per cut-out, shaped as every lineage record is (SLSA provenance,
step ``cut-out``): its inputs are what was taken out (each deployment's URL with the digest
of the model it served, and each model by URI), its parameters say who (``actor``) and why
(``reason``), ``runDetails`` when. It is written into the deployment's folder,
``<state>/<name>/.mlops/lineage/cut-out.intoto.json``; the steps then attach it beside each
model in its store (``oci://``, ``s3://``, ``file://``), where ``tekton-mlops lineage show``
finds it. With a signing key it is signed as sign-artifact signs lineage (a DSSE envelope in
a Sigstore bundle, ``cut-out.sigstore.json`` beside the record) and the bundle is what is
attached; without one the bare statement is, shown as unsigned, as deploy records are.

Who: the ``actor`` given, else the TaskRun's service account as Kubernetes names it
(``system:serviceaccount:<namespace>:<name>``, from the pod's own fields through the
downward API), else the local user (``user@host``).
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.deploy.cutout import CutOut
from tekton_mlops.lineage import Artifact, attestation_path, statement, write_statement

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

STEP = "cut-out"


def default_actor(env: Mapping[str, str] | None = None) -> str:
    """Who runs this step when nobody said: the pod's service account, else the local user."""
    env = os.environ if env is None else env
    account = env.get("TEKTON_MLOPS_SERVICE_ACCOUNT", "")
    if account:
        return f"system:serviceaccount:{env.get('TEKTON_MLOPS_NAMESPACE') or 'default'}:{account}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry, as in many images
        user = f"uid-{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def cut_out_statement(
    cuts: list[CutOut],
    params: Mapping[str, Any],
    started: datetime,
    finished: datetime,
) -> dict[str, Any]:
    """The statement of one cut-out run over the deployments ``cuts`` changed."""
    inputs: list[Artifact] = []
    models: dict[tuple[str, str], None] = {}
    byproducts: list[dict[str, Any]] = []
    for cut in cuts:
        for served in cut.taken:
            shown = (
                {"name": served.what, "uri": served.url} if served.url else {"name": served.what}
            )
            byproducts.append({**shown, "annotations": {"deployment": _deployment(cut)}})
            if served.model is not None:
                inputs.append(Artifact("deployment", served.url, _hex(served.model.digest)))
                models[(served.model.uri, served.model.digest)] = None
    inputs += [Artifact("model", uri, _hex(digest)) for uri, digest in models]
    pipeline_run = os.environ.get("TEKTON_MLOPS_PIPELINE_RUN", "")
    if pipeline_run:
        byproducts.append({"name": "pipelineRun", "annotations": {"name": pipeline_run}})
    return statement(STEP, params, inputs, [], started, finished, byproducts)


def _deployment(cut: CutOut) -> str:
    where = f"{cut.namespace}/{cut.name}" if cut.namespace else cut.name
    return f"{cut.target} {where}"


def write_record(
    folder: Path, record: Mapping[str, Any], key: EllipticCurvePrivateKey | None
) -> Path:
    """Write the record (and its signed bundle) into ``folder``; return what to attach to a
    store: the bundle when signed, else the record."""
    path = write_statement(folder, STEP, record)
    if key is None:
        attestation_path(path).unlink(missing_ok=True)  # an earlier cut-out's, now stale
        return path
    from tekton_mlops.signing import sign_statement, write_json_atomically

    bundle = attestation_path(path)
    write_json_atomically(bundle, sign_statement(record, key))
    return bundle
