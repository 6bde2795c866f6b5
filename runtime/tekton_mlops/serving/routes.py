"""The routing table of ``tekton-mlops route``: versions, weights, sticky routing, a mirror.

A table is one JSON file the router reads and reloads when it changes::

    {"model": "iris",
     "backends": {"v1": "http://127.0.0.1:8001", "v2": "http://127.0.0.1:8002"},
     "weights": {"v1": 100, "v2": 0},
     "sticky_header": "x-user",
     "mirror": {"version": "v2", "percent": 10}}

``weights`` are integer percents summing to 100; a version left out or at 0 is
deployed and gets no traffic. A mirror version gets copies of live requests only, so
its weight must be 0 (a version with traffic would answer clients itself). A table
is replaced whole by one atomic rename (:func:`write_table`), so a reader sees the
old table or the new one, never a mix.

Each request falls in one of 100 buckets, and the buckets are dealt to the versions
cumulatively in the order of ``backends`` (v1 gets buckets 0-89, v2 90-99 for
90/10). Without a sticky header the bucket is random; with one it is a hash of the
header's value, so a user stays on one version while the weights stay, and a change
of weights moves only the users whose bucket changed hands (90/10 to 80/20 moves the
users of buckets 80-89 from v1 to v2, and nobody else).

Example::

    table = read_table(Path("table.json"))
    table.version_for(bucket_of("user-42"))     # 'v1'
    write_table(Path("table.json"), table.changed(weights={"v1": 0, "v2": 100}))
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tekton_mlops.errors import ParameterError, Violation

BUCKETS = 100
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_URL = re.compile(r"http://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})/?")
_FIELDS = ("model", "backends", "weights", "sticky_header", "mirror")


class Keep:
    """The value of an argument of :meth:`Table.changed` that keeps what the table has."""


KEEP = Keep()


@dataclass(frozen=True)
class Mirror:
    """Copies of ``percent`` percent of the live requests go to ``version``."""

    version: str
    percent: float

    def document(self) -> dict[str, Any]:
        percent = int(self.percent) if float(self.percent).is_integer() else self.percent
        return {"version": self.version, "percent": percent}


@dataclass(frozen=True)
class Table:
    model: str
    backends: dict[str, str]  # version -> http://host:port, in bucket order
    weights: dict[str, int]  # every backend, 0 for none
    sticky_header: str = ""  # lower case; "" for random choice
    mirror: Mirror | None = None
    # bucket -> version: the choice of a request is one index.
    slots: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        slots = [v for v in self.backends for _ in range(self.weights.get(v, 0))]
        object.__setattr__(self, "slots", tuple(slots))

    @property
    def live(self) -> tuple[str, ...]:
        """Versions with traffic, the most first (ties in backends order)."""
        order = list(self.backends)
        weighted = [v for v in order if self.weights.get(v, 0) > 0]
        return tuple(sorted(weighted, key=lambda v: (-self.weights[v], order.index(v))))

    def version_for(self, bucket: int) -> str:
        return self.slots[bucket]

    def document(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backends": dict(self.backends),
            "weights": {v: self.weights.get(v, 0) for v in self.backends},
            "sticky_header": self.sticky_header,
            "mirror": None if self.mirror is None else self.mirror.document(),
        }

    def changed(
        self,
        *,
        backends: Mapping[str, str] | None = None,
        weights: Mapping[str, int] | None = None,
        sticky_header: str | None = None,
        mirror: Mirror | None | Keep = KEEP,
    ) -> Table:
        """A new table with some fields replaced, checked whole; raises TableError."""
        document = self.document()
        if backends is not None:
            document["backends"] = dict(backends)
        if weights is not None:
            document["weights"] = dict(weights)
        if sticky_header is not None:
            document["sticky_header"] = sticky_header
        if not isinstance(mirror, Keep):
            document["mirror"] = None if mirror is None else mirror.document()
        return parse_table(document)


class TableError(ParameterError):
    """A table (or a change to one) that breaks the rules; every violation at once."""

    def __init__(self, violations: list[Violation], where: str = "route table") -> None:
        super().__init__(where, violations)


def _violations(document: Any) -> list[Violation]:
    """Every broken rule of a table document; each names the field (as an option name)."""
    if not isinstance(document, dict):
        return [Violation("table", type(document).__name__, "must be a JSON object")]
    problems = [
        Violation("table", key, f"unknown field (known: {', '.join(_FIELDS)})")
        for key in document
        if key not in _FIELDS
    ]
    model = document.get("model")
    if not isinstance(model, str) or not MODEL.fullmatch(model):
        problems.append(Violation("model", model, "must be a model name (letters, digits, ._-)"))
    backends = document.get("backends")
    if not isinstance(backends, dict) or not backends:
        problems.append(Violation("backend", backends, "must map at least one version to a URL"))
        backends = {}
    for version, url in backends.items():
        if not VERSION.fullmatch(version):
            problems.append(
                Violation("backend", version, "a version is 1-63 letters, digits, ._- ")
            )
        if not isinstance(url, str) or not (m := _URL.fullmatch(url)) or int(m["port"]) > 65535:
            rule = "must be http://HOST:PORT (no path; the router speaks plain HTTP)"
            problems.append(Violation("backend", f"{version}={url}", rule))
    problems += _weight_violations(document.get("weights"), backends)
    sticky = document.get("sticky_header", "")
    if not isinstance(sticky, str) or (sticky and not _HEADER.fullmatch(sticky)):
        problems.append(Violation("sticky-header", sticky, "must be empty or a header name"))
    problems += _mirror_violations(document.get("mirror"), backends, document.get("weights"))
    return problems


def _weight_violations(weights: Any, backends: Mapping[str, Any]) -> list[Violation]:
    if not isinstance(weights, dict):
        return [Violation("weights", weights, "must map versions to integer percents")]
    problems = []
    for version, weight in weights.items():
        shown = f"{version}={weight}"
        if version not in backends:
            known = ", ".join(backends) or "none"
            problems.append(Violation("weights", shown, f"unknown version (known: {known})"))
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            problems.append(Violation("weights", shown, "a weight is an integer from 0 to 100"))
    if not problems and sum(weights.values()) != 100:
        text = ",".join(f"{v}={w}" for v, w in weights.items())
        rule = f"the weights sum to {sum(weights.values())}, not 100"
        problems.append(Violation("weights", text, rule))
    return problems


def _mirror_violations(mirror: Any, backends: Mapping[str, Any], weights: Any) -> list[Violation]:
    if mirror is None:
        return []
    if not isinstance(mirror, dict) or set(mirror) != {"version", "percent"}:
        return [Violation("mirror", mirror, 'must be null or {"version": V, "percent": P}')]
    version, percent = mirror["version"], mirror["percent"]
    shown = f"{version}:{percent}"
    problems = []
    if version not in backends:
        known = ", ".join(backends) or "none"
        problems.append(Violation("mirror", shown, f"unknown version (known: {known})"))
    elif isinstance(weights, dict) and weights.get(version, 0):
        rule = f"{version} has weight {weights[version]}: a mirror gets copies only, weight 0"
        problems.append(Violation("mirror", shown, rule))
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        problems.append(Violation("mirror", shown, "the percent is a number from 0 to 100"))
    return problems


def parse_table(document: Any, where: str = "route table") -> Table:
    """A checked table from its JSON document; raises TableError naming every problem."""
    if problems := _violations(document):
        raise TableError(problems, where)
    backends = dict(document["backends"])
    mirror = document.get("mirror")
    return Table(
        model=document["model"],
        backends=backends,
        weights={v: int(document["weights"].get(v, 0)) for v in backends},
        sticky_header=document.get("sticky_header", "").lower(),
        mirror=None if mirror is None else Mirror(mirror["version"], mirror["percent"]),
    )


def read_table(path: Path) -> tuple[Table, str]:
    """The table in ``path`` and the sha256 of its bytes (what the router reports)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TableError(
            [Violation("table", str(path), f"cannot be read: {exc.strerror}")]
        ) from None
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise TableError([Violation("table", str(path), f"is not JSON: {exc}")]) from None
    return parse_table(document, str(path)), digest_of(data)


def table_bytes(table: Table) -> bytes:
    return (json.dumps(table.document(), indent=2) + "\n").encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_table(path: Path, table: Table) -> str:
    """Replace ``path`` with ``table`` in one rename; return the digest of what was written.

    The new table is written and synced beside the old one first: a router reading
    at any moment finds one whole table, and a crash leaves the old one in place.
    """
    data = table_bytes(table)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return digest_of(data)


def records_path(table: Path) -> Path:
    """Where the router appends its mirror records: beside the table."""
    return table.with_suffix(".mirror.jsonl")


def bucket_of(value: str) -> int:
    """The bucket of a sticky header's value: the same in every process and run."""
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big") % BUCKETS


def parse_weights(text: str) -> dict[str, int]:
    """``v1=90,v2=10`` as a mapping; raises TableError naming --weights."""
    weights: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        version, equals, number = item.partition("=")
        if not equals or not re.fullmatch(r"[0-9]{1,3}", number.strip()):
            rule = "each item is VERSION=PERCENT with an integer percent, e.g. v1=90,v2=10"
            raise TableError([Violation("weights", text, rule)], "route set")
        if version.strip() in weights:
            rule = f"{version.strip()} is given twice"
            raise TableError([Violation("weights", text, rule)], "route set")
        weights[version.strip()] = int(number)
    return weights


def parse_mirror(text: str) -> Mirror | None:
    """``v2:10`` as a Mirror, ``none`` (or empty) as no mirror; raises TableError."""
    if text.strip().lower() in ("", "none"):
        return None
    version, colon, percent = text.rpartition(":")
    try:
        value = float(percent)
    except ValueError:
        value = float("nan")
    if not colon or not version or value != value:  # NaN: not a number
        rule = "must be VERSION:PERCENT (e.g. v2:10) or none"
        raise TableError([Violation("mirror", text, rule)], "route set")
    return Mirror(version.strip(), int(value) if value.is_integer() else value)
