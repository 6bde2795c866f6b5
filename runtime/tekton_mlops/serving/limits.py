"""What one request to ``tekton-mlops serve`` may cost; no numpy, so ``serve --help`` is cheap."""

from __future__ import annotations

from dataclasses import dataclass

#: JSON values a request may hold beside its tensors' elements (names, shapes,
#: parameters): the parser's budget of Python objects is max_elements plus this.
ENVELOPE_VALUES = 1 << 16


@dataclass(frozen=True)
class Limits:
    """Per-request limits; the defaults are ``tekton-mlops serve``'s."""

    max_request_bytes: int = 64 << 20  # body size, refused (413) before it is read
    max_elements: int = 16 << 20  # tensor elements over all inputs (413)

    @property
    def max_values(self) -> int:
        """Python objects the JSON parser may build: BYTES elements and the envelope."""
        return self.max_elements + ENVELOPE_VALUES
