"""Real-valued arrays from user input: complex numbers and booleans are refused by name, never cast.

numpy casts a complex array to float with only a warning (the imaginary part dropped) and booleans to 0/1;
`real_array` raises instead, naming the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def require_finite(label: str, values: np.ndarray, rule: str) -> None:
    """ValueError naming the first non-finite entry of the per-station `values` (`label[i] = v: rule`), how many
    there are and at which stations."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{label}[{bad[0]}] = {values[bad[0]]}: {rule} ({bad.size} non-finite value(s) at stations "
                         f"{bad[:10].tolist()})")


def real_array(label: str, values: Any) -> np.ndarray:
    """`values` as a float64 array; TypeError naming `label` for complex, boolean or non-numeric input."""
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind == "O":
        if any(isinstance(v, (bool, np.bool_, complex, np.complexfloating)) for v in arr.reshape(-1)):
            kind = "c" if any(isinstance(v, (complex, np.complexfloating)) for v in arr.reshape(-1)) else "b"
    if kind in "US" or kind == "O" and any(isinstance(v, (str, bytes)) for v in arr.reshape(-1)):
        raise TypeError(f"{label} holds text ({values!r:.80}): must be real numbers")
    if kind in "cb":
        what = "complex" if kind == "c" else "boolean"
        raise TypeError(f"{label} holds {what} values ({values!r:.80}): must be real numbers")
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{label} = {values!r:.80}: must be real numbers") from None
