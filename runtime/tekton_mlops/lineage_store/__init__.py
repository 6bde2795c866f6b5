"""The lineage store: a model's lineage attestations kept beside the model where it is stored.

A model carries its lineage records in ``.mlops/lineage/`` (the steps that made it, and
under ``upstream/`` the records of the data it was trained on), each with the DSSE
attestation sign-artifact made of it (``<step>.sigstore.json``, a Sigstore bundle v0.3).
They travel with the model when push-model pushes it. What happens to a model after it
is stored (its push, each deployment) is attached to it afterwards:

=========  ==========================================================================
store      where a model's attestations are
=========  ==========================================================================
``oci://`` the model's layers ``.mlops/lineage/…``; and OCI 1.1 referrers of the model's
           manifest, one per attestation (cosign's layout: the bundle as the one layer,
           ``artifactType`` its media type, the empty config, ``subject`` the model),
           found through the referrers API where the registry has it, else through the
           image index tagged ``sha256-<hex of the model's manifest digest>``
``s3://``  ``<prefix>/sha256-<root>/.mlops/lineage/…`` (pushed with the model) and
``file://`` ``<prefix>/sha256-<root>/.mlops/attestations/<step>-<sha256[:16]>.<kind>.json``
           (attached: push and deploy records; named by content, so nothing is overwritten)
=========  ==========================================================================

Records nobody could sign when they were written (push-model's, deploy-model's: those
steps hold no signing key) are stored as bare in-toto statements and shown as unsigned.

Example::

    found = model_attestations("oci://r.example/team/iris@sha256:…", StoreOptions())
    checked = [check(a, [load_public_key(Path("key.pub"))]) for a in found.attestations]
    graph = build(found.subject, checked)
"""
