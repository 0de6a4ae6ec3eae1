"""Strict CSV reading shared by the scenario CSV and ACN-Data readers: a malformed row is refused in one line."""

from __future__ import annotations

import os
import warnings

import pandas as pd


def read_csv_strict(path: str | os.PathLike[str], what: str, text: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV file as a DataFrame, the columns `text` read as text; a row with more fields than the header is
    refused (pandas would otherwise take the first column as an index or drop the extra field). `what` starts
    the one-line errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, index_col=False, dtype=dict.fromkeys(text, str))
    except FileNotFoundError:
        raise ValueError(f"{what}: no such file") from None
    except pd.errors.ParserWarning:
        raise ValueError(f"{what}: a row has more fields than the header; every row needs one field per "
                         "column") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what}: cannot read it as CSV ({str(exc).strip()})") from None
