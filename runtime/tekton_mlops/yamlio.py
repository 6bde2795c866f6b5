"""YAML in and out through libyaml when PyYAML has it (several times faster), plain otherwise."""

from __future__ import annotations

from typing import Any

import yaml

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """kubectl never prints YAML anchors; neither do we."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def load(text: str) -> Any:
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader


def load_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=Loader))  # noqa: S506 - a safe loader


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=Dumper, sort_keys=False)
