"""Tekton's feature flags (the ``feature-flags`` ConfigMap), with the defaults Tekton ships.

Only flags that change what this project admits or how it runs are modelled; every
other key of the ConfigMap is accepted and ignored, as Tekton ignores keys it does
not know.

Example::

    flags = FeatureFlags.from_config_map({"data": {"results-from": "sidecar-logs"}})
    flags.max_result_size  # 4096 until max-result-size says otherwise
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

#: Where Tekton keeps its flags: ConfigMap ``feature-flags`` in ``tekton-pipelines``.
CONFIG_MAP = "feature-flags"
API_FIELDS = ("alpha", "beta", "stable")
RESULTS_FROM = ("termination-message", "sidecar-logs")
#: A result larger than this cannot be stored in the TaskRun object (the CRD's limit).
MAX_RESULT_SIZE_LIMIT = 1572863


class FlagError(ValueError):
    """A flag has a value Tekton would refuse (its controller would not start)."""


@dataclass(frozen=True)
class FeatureFlags:
    enable_api_fields: str = "beta"
    results_from: str = "termination-message"
    max_result_size: int = 4096
    enable_step_actions: bool = True
    enable_param_enum: bool = False
    enable_cel_in_whenexpression: bool = False
    keep_pod_on_cancel: bool = False
    disable_inline_spec: str = ""

    @classmethod
    def from_config_map(cls, document: dict[str, Any]) -> FeatureFlags:
        """Flags from a ConfigMap document (its ``data``), the rest at Tekton's defaults."""
        data = {str(k): str(v).strip() for k, v in (document.get("data") or {}).items()}
        values: dict[str, Any] = {}
        for field in fields(cls):
            key = field.name.replace("_", "-")
            if key not in data:
                continue
            raw = data[key]
            default = getattr(cls(), field.name)
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false"):
                    raise FlagError(f'invalid value for feature flag "{key}": "{raw}"')
                values[field.name] = raw.lower() == "true"
            elif isinstance(default, int):
                try:
                    values[field.name] = int(raw)
                except ValueError:
                    raise FlagError(f'invalid value for feature flag "{key}": "{raw}"') from None
            else:
                values[field.name] = raw
        flags = cls(**values)
        flags.check()
        return flags

    def check(self) -> None:
        if self.enable_api_fields not in API_FIELDS:
            raise FlagError(
                f'invalid value for feature flag "enable-api-fields": "{self.enable_api_fields}"'
            )
        if self.results_from not in RESULTS_FROM:
            raise FlagError(f'invalid value for feature flag "results-from": "{self.results_from}"')
        if not 0 < self.max_result_size <= MAX_RESULT_SIZE_LIMIT:
            raise FlagError(
                f"max-result-size must be between 1 and {MAX_RESULT_SIZE_LIMIT} bytes, "
                f"not {self.max_result_size}"
            )

    @property
    def result_budget(self) -> int:
        """Bytes all results of one TaskRun may take together.

        Through the termination message every result of a pod shares 4096 bytes; read from
        sidecar logs each result may be up to ``max-result-size``.
        """
        return 4096 if self.results_from == "termination-message" else self.max_result_size

    def allows(self, stability: str) -> bool:
        """Whether a feature of this stability (alpha, beta, stable) is on."""
        order = {"alpha": 0, "beta": 1, "stable": 2}
        return order[self.enable_api_fields] <= order[stability]
