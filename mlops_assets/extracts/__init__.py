"""Reading and validating monthly extracts with DuckDB's CSV reader.

A file is checked completely before anything is written: header against the contract, every
row parsed (a truncated or non-UTF-8 file fails here), text in numeric columns counted. Only
then does the caller replace a table, so a bad file never touches earlier results.

One module per job: `sql` (the SQL text), `file_bytes` (header, UTF-8 and hash), `validation`
(the contract's rules), `errors` (messages that name the file and the fix), `loading` (the loaders).
"""

from mlops_assets.extracts.errors import ExtractError
from mlops_assets.extracts.loading import load_extract, load_extracts
from mlops_assets.extracts.validation import ExtractCheck, check_extract

__all__ = ["ExtractCheck", "ExtractError", "check_extract", "load_extract", "load_extracts"]
