"""sign-artifact and verify-artifact, checked against the model_signing CLI in both directions."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KeyPair, make_key_pair

MODEL_SIGNING = str(Path(sys.executable).with_name("model_signing"))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A model directory as train-model and evaluate-model leave it, lineage included."""
    root = tmp_path / "model"
    (root / "weights").mkdir(parents=True)
    (root / "model.onnx").write_bytes(os.urandom(64 * 1024))
    (root / "metadata.json").write_text('{"estimator": "logistic-regression"}\n')
    (root / "weights" / "extra.bin").write_bytes(os.urandom(4096))
    lineage = root / ".mlops" / "lineage"
    lineage.mkdir(parents=True)
    (lineage / "train-model.intoto.json").write_text(
        json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicate": {}})
    )
    return root


def sign(run_step, model: Path, keys: KeyPair, *extra: str):  # type: ignore[no-untyped-def]
    return run_step("sign-artifact", f"--path={model}", f"--private-key={keys.private}", *extra)


def verify(run_step, model: Path, keys: KeyPair, *extra: str):  # type: ignore[no-untyped-def]
    return run_step("verify-artifact", f"--path={model}", f"--public-key={keys.public}", *extra)


def cli_verify(model: Path, signature: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MODEL_SIGNING, "verify", "key", str(model), "--signature", str(signature),
         "--public_key", str(public)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def signed_statement(signature: Path) -> dict:  # type: ignore[type-arg]
    bundle = json.loads(signature.read_text())
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))  # type: ignore[no-any-return]


def test_model_signing_cli_verifies_our_signature(run_step, model, keys) -> None:  # type: ignore[no-untyped-def]
    signed = sign(run_step, model, keys)
    assert signed.exit_code == 0, signed.output
    signature = model / "model.sig"
    assert signed.results["signature"] == str(signature)
    assert signed.results["file-count"] == "3"
    checked = cli_verify(model, signature, keys.public)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Verification succeeded" in checked.stdout
    # The root digest result is the statement's subject, the model's identity.
    subject = signed_statement(signature)["subject"][0]
    assert signed.results["root-digest"] == "sha256:" + subject["digest"]["sha256"]


def test_we_verify_what_the_model_signing_cli_signs(run_step, model, keys) -> None:  # type: ignore[no-untyped-def]
    signature = model / "model.sig"
    made = subprocess.run(
        [MODEL_SIGNING, "sign", "key", str(model), "--private_key", str(keys.private),
         "--signature", str(signature), "--ignore-paths", str(model / ".mlops")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    checked = verify(run_step, model, keys)
    assert checked.exit_code == 0, checked.output
    assert checked.results["verified"] == "true"
    subject = signed_statement(signature)["subject"][0]["digest"]["sha256"]
    assert checked.results["root-digest"] == f"sha256:{subject}"


def test_single_file_signature_beside_the_file(run_step, model, keys) -> None:  # type: ignore[no-untyped-def]
    onnx = model / "model.onnx"
    signed = sign(run_step, onnx, keys)
    assert signed.exit_code == 0, signed.output
    signature = model / "model.onnx.sig"
    assert cli_verify(onnx, signature, keys.public).returncode == 0
    assert verify(run_step, onnx, keys).exit_code == 0
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")
    failed = verify(run_step, onnx, keys)
    assert failed.exit_code == 1
    assert "changed file(s): ." in failed.output


def _flip_byte(model: Path) -> None:
    data = bytearray((model / "model.onnx").read_bytes())
    data[1000] ^= 0x01
    (model / "model.onnx").write_bytes(bytes(data))


def _tamper_payload(signature: Path) -> None:
    """Change what the statement says (a digest) without re-signing it."""
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))


def _flip_signature(signature: Path) -> None:
    bundle = json.loads(signature.read_text())
    raw = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 0x01
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    signature.write_text(json.dumps(bundle))


TAMPERING = {
    # case: (change to the signed model, phrase the one-line error must hold, CLI also rejects)
    "changed byte": (lambda m: _flip_byte(m), "changed file(s): model.onnx", True),
    "extra file": (
        lambda m: (m / "weights" / "new.bin").write_bytes(b"x"),
        "unsigned file(s): weights/new.bin",
        True,
    ),
    "missing file": (
        lambda m: (m / "weights" / "extra.bin").unlink(),
        "missing file(s): weights/extra.bin",
        True,
    ),
    "renamed file": (
        lambda m: (m / "metadata.json").rename(m / "meta.json"),
        "unsigned file(s): meta.json; missing file(s): metadata.json",
        True,
    ),
    "missing signature": (lambda m: (m / "model.sig").unlink(), "no signature file", True),
    "signature not JSON": (
        lambda m: (m / "model.sig").write_text("{not json"),
        "malformed signature, not JSON",
        True,
    ),
    "truncated bundle": (
        lambda m: (m / "model.sig").write_text(
            '{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}'
        ),
        "malformed signature bundle",
        True,
    ),
    "statement edited": (
        lambda m: _tamper_payload(m / "model.sig"),
        "does not verify with this public key",
        True,
    ),
    "signature bytes flipped": (
        lambda m: _flip_signature(m / "model.sig"),
        "does not verify with this public key",
        True,
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_every_tamper_case_fails_closed(run_step, model, keys, case) -> None:  # type: ignore[no-untyped-def]
    assert sign(run_step, model, keys).exit_code == 0
    tamper, phrase, cli_rejects = TAMPERING[case]
    tamper(model)
    failed = verify(run_step, model, keys)
    assert failed.exit_code == 1, f"{case} was accepted"
    assert failed.results == {}, "a failed verification wrote results"
    errors = [line for line in failed.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.output
    assert phrase in errors[0]
    if cli_rejects:
        assert cli_verify(model, model / "model.sig", keys.public).returncode != 0


def test_another_key_is_refused(run_step, model, keys, other_keys) -> None:  # type: ignore[no-untyped-def]
    assert sign(run_step, model, keys).exit_code == 0
    failed = verify(run_step, model, other_keys)
    assert failed.exit_code == 1
    assert "signed with another key" in failed.output
    assert cli_verify(model, model / "model.sig", other_keys.public).returncode != 0


def test_another_key_with_a_forged_hint_is_refused(run_step, model, keys, other_keys) -> None:  # type: ignore[no-untyped-def]
    """The hint is only a label: copying the right one must not let another key's signature pass."""
    assert sign(run_step, model, other_keys).exit_code == 0
    genuine = json.loads(_signed_hint_bundle(run_step, model, keys))
    bundle = json.loads((model / "model.sig").read_text())
    bundle["verificationMaterial"] = genuine["verificationMaterial"]
    (model / "model.sig").write_text(json.dumps(bundle))
    failed = verify(run_step, model, keys)
    assert failed.exit_code == 1
    assert "does not verify with this public key" in failed.output


def _signed_hint_bundle(run_step, model: Path, keys: KeyPair) -> str:  # type: ignore[no-untyped-def]
    elsewhere = model.parent / "hint.sig"
    assert sign(run_step, model, keys, f"--signature={elsewhere}").exit_code == 0
    return elsewhere.read_text()


def test_expected_digest_pins_the_signed_root(run_step, model, keys) -> None:  # type: ignore[no-untyped-def]
    signed = sign(run_step, model, keys)
    pinned = verify(run_step, model, keys, f"--expected-digest={signed.results['root-digest']}")
    assert pinned.exit_code == 0
    wrong = verify(run_step, model, keys, "--expected-digest=" + "ab" * 32)
    assert wrong.exit_code == 1
    assert "is not the expected sha256:abab" in wrong.output


def test_ignore_unsigned_files_accepts_only_extra_files(run_step, model, keys) -> None:  # type: ignore[no-untyped-def]
    assert sign(run_step, model, keys).exit_code == 0
    (model / "README.md").write_text("added after signing\n")
    assert verify(run_step, model, keys, "--ignore-unsigned-files").exit_code == 0
    _flip_byte(model)
    assert verify(run_step, model, keys, "--ignore-unsigned-files").exit_code == 1


def test_lineage_is_attested_and_checked(run_step, model, keys) -> None:  # type: ignore[no-untyped-def]
    assert sign(run_step, model, keys).exit_code == 0
    lineage = model / ".mlops" / "lineage"
    assert sorted(p.name for p in lineage.iterdir()) == [
        "sign-artifact.intoto.json",
        "sign-artifact.sigstore.json",
        "train-model.intoto.json",
        "train-model.sigstore.json",
    ]
    record = json.loads((lineage / "sign-artifact.intoto.json").read_text())
    assert record["subject"][0]["name"] == "signature"
    assert verify(run_step, model, keys).exit_code == 0
    # Lineage sits outside the model signature, so its own attestation must catch edits.
    edited = json.loads((lineage / "train-model.intoto.json").read_text())
    edited["subject"] = [{"name": "forged", "digest": {"sha256": "0" * 64}}]
    (lineage / "train-model.intoto.json").write_text(json.dumps(edited))
    failed = verify(run_step, model, keys)
    assert failed.exit_code == 1
    assert "train-model.intoto.json: differs from what train-model.sigstore.json signs" in (
        failed.output
    )


def test_key_from_a_mounted_secret_folder(run_step, model, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A Secret volume holds each key as a link into a hidden ..data folder."""
    secret = tmp_path / "secret"
    data = secret / "..2026_11_23"
    data.mkdir(parents=True)
    (data / "cosign.key").write_bytes(keys.private.read_bytes())
    (secret / "..data").symlink_to(data.name)
    (secret / "cosign.key").symlink_to("..data/cosign.key")
    signed = run_step("sign-artifact", f"--path={model}", f"--private-key={secret}")
    assert signed.exit_code == 0, signed.output
    assert verify(run_step, model, keys).exit_code == 0


@pytest.mark.parametrize("problem", ["missing", "rsa", "encrypted", "public-as-private"])
def test_an_unusable_key_changes_nothing(run_step, model, keys, tmp_path, problem) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = tmp_path / "key.pem"
    if problem == "rsa":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key.write_bytes(
            rsa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    elif problem == "encrypted":
        key.write_bytes(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"pw"),
            )
        )
    elif problem == "public-as-private":
        key.write_bytes(keys.public.read_bytes())
    before = sorted(p.relative_to(model) for p in model.rglob("*"))
    failed = run_step("sign-artifact", f"--path={model}", f"--private-key={key}")
    assert failed.exit_code == 1
    assert f"error: {key}" in failed.output
    assert sorted(p.relative_to(model) for p in model.rglob("*")) == before


def test_p384_keys_sign_and_verify(run_step, model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p384 = make_key_pair(tmp_path / "p384", "secp384r1")
    assert sign(run_step, model, p384).exit_code == 0
    assert cli_verify(model, model / "model.sig", p384.public).returncode == 0
    assert verify(run_step, model, p384).exit_code == 0


def test_symlinks_are_refused(run_step, model, keys) -> None:  # type: ignore[no-untyped-def]
    (model / "link.onnx").symlink_to(model / "model.onnx")
    failed = sign(run_step, model, keys)
    assert failed.exit_code == 1
    assert "link.onnx: symbolic links are not allowed in an artifact" in failed.output
    assert not (model / "model.sig").exists()


def test_invalid_parameters_exit_2(run_step, model) -> None:  # type: ignore[no-untyped-def]
    failed = run_step("verify-artifact", f"--path={model}", "--expected-digest=abc")
    assert failed.exit_code == 2
    assert "--public-key" in failed.output
    assert "--expected-digest='abc'" in failed.output


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_verification_is_recorded_beside_the_model(run_step, model, keys) -> None:  # type: ignore[no-untyped-def]
    signed = sign(run_step, model, keys)
    root = signed.results["root-digest"].removeprefix("sha256:")
    _flip_byte(model)
    assert verify(run_step, model, keys).exit_code == 1
    record_path = model / ".mlops" / "lineage" / "verify-artifact.intoto.json"
    assert not record_path.exists()  # a failed verification records nothing
    _flip_byte(model)  # back as signed

    checked = verify(run_step, model, keys)
    assert checked.exit_code == 0, checked.output
    assert checked.results["root-digest"] == signed.results["root-digest"]
    record = json.loads(record_path.read_text())
    # What was verified, with what signature and which key, each by its digest.
    assert record["predicate"]["buildDefinition"]["resolvedDependencies"] == [
        {"name": "model", "uri": model.resolve().as_uri(), "digest": {"sha256": root}},
        {"name": "signature", "uri": (model / "model.sig").resolve().as_uri(),
         "digest": {"sha256": _sha256(model / "model.sig")}},
        {"name": "public-key", "uri": keys.public.resolve().as_uri(),
         "digest": {"sha256": _sha256(keys.public)}},
    ]  # fmt: skip
    assert record["subject"] == [{"name": "verified-model", "digest": {"sha256": root}}]
    # The record lies outside what is signed: the model still verifies, by us and the CLI.
    assert verify(run_step, model, keys).exit_code == 0
    assert cli_verify(model, model / "model.sig", keys.public).returncode == 0


def test_a_verified_file_is_recorded_in_its_folder(run_step, model, keys) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    onnx = model / "model.onnx"
    signed = sign(run_step, onnx, keys)
    assert verify(run_step, onnx, keys).exit_code == 0
    record = json.loads((model / ".mlops/lineage/verify-artifact.intoto.json").read_text())
    # A single file's root is the model signing one: sha256 over the file's raw sha256.
    root = hashlib.sha256(bytes.fromhex(_sha256(onnx))).hexdigest()
    assert signed.results["root-digest"] == f"sha256:{root}"
    assert record["subject"] == [{"name": "verified-model", "digest": {"sha256": root}}]
