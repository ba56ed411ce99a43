"""Observed request lengths from a file, and a workload's ``lengths_file`` turned into buckets.

A file is one of (chosen by its suffix):

* ``.csv`` with a header: an input column (``input_tokens``, ``prompt_tokens``, ``input_len``,
  ``prompt_len``, ``input_length``) and an output column (``output_tokens``,
  ``completion_tokens``, ``output_len``, ``output_length``), one request per row;
* ``.jsonl``: one object per line with those keys, or an OpenAI-style ``usage`` object
  (``prompt_tokens``, ``completion_tokens``), as gateway logs record it;
* ``.json``: the result file of ``vllm bench serve --save-result --save-detailed`` (its
  ``input_lens`` and ``output_lens`` lists, one entry per request: vllm
  ``benchmarks/benchmark_serving.py`` result dict), or a list of the JSONL objects.

Binning is :func:`optimizer.sizing.lengths.bin_requests` (natural breaks of log input x output length).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from optimizer.errors import ScenarioError
from optimizer.sizing.lengths import RequestBucket, bin_requests

INPUT_KEYS = ("input_tokens", "prompt_tokens", "input_len", "prompt_len", "input_length")
OUTPUT_KEYS = ("output_tokens", "completion_tokens", "output_len", "output_length")
#: Largest request file read (bytes): a year of a busy gateway's lengths is well below this.
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_REQUESTS = 20_000_000
MAX_REQUEST_TOKENS = 100_000_000


class RequestFileError(ValueError):
    """A request-length file that cannot be read; ``where`` names the line or key."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        super().__init__(message)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RequestFileError(f"expected a token count, got {value!r}", where)
    try:
        number = float(value)
    except ValueError:
        raise RequestFileError(f"expected a token count, got {value!r}", where) from None
    if not math.isfinite(number) or number != int(number) or not 1 <= number <= MAX_REQUEST_TOKENS:
        raise RequestFileError(f"token counts must be whole numbers from 1 to {MAX_REQUEST_TOKENS:,}, "
                               f"got {value!r}", where)
    return int(number)


def _pick(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    usage = row.get("usage")
    if isinstance(usage, dict):
        for key in keys:
            if key in usage:
                return usage[key]
    raise KeyError(keys[0])


def _pairs_of_objects(rows: list[Any], label: str) -> tuple[list[int], list[int]]:
    inputs: list[int] = []
    outputs: list[int] = []
    for n, row in enumerate(rows, start=1):
        where = f"{label} {n}"
        if not isinstance(row, dict):
            raise RequestFileError("expected an object with input and output token counts", where)
        try:
            inputs.append(_count(_pick(row, INPUT_KEYS), where))
            outputs.append(_count(_pick(row, OUTPUT_KEYS), where))
        except KeyError:
            raise RequestFileError(f"needs an input key ({', '.join(INPUT_KEYS)}) and an output key "
                                   f"({', '.join(OUTPUT_KEYS)})", where) from None
    return inputs, outputs


def parse_request_lengths(text: str, suffix: str) -> tuple[list[int], list[int]]:
    """Input and output token counts of every request in ``text`` (a file of kind ``suffix``)."""
    suffix = suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        fields = reader.fieldnames or []
        in_key = next((k for k in INPUT_KEYS if k in fields), None)
        out_key = next((k for k in OUTPUT_KEYS if k in fields), None)
        if in_key is None or out_key is None:
            raise RequestFileError(f"the header needs an input column ({', '.join(INPUT_KEYS)}) and an output "
                                   f"column ({', '.join(OUTPUT_KEYS)}); it has {', '.join(fields) or 'none'}",
                                   "line 1")
        inputs, outputs = [], []
        for n, row in enumerate(reader, start=2):
            inputs.append(_count(row[in_key], f"line {n}, {in_key}"))
            outputs.append(_count(row[out_key], f"line {n}, {out_key}"))
    elif suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RequestFileError(f"not JSON: {exc.msg}", f"line {n}") from None
        inputs, outputs = _pairs_of_objects(rows, "line")
    elif suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestFileError(f"not JSON: {exc.msg}", f"line {exc.lineno}") from None
        if isinstance(doc, dict) and "input_lens" in doc and "output_lens" in doc:
            ins, outs = doc["input_lens"], doc["output_lens"]
            if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs):
                raise RequestFileError("input_lens and output_lens must be lists of the same length", "input_lens")
            inputs = [_count(v, f"input_lens[{i}]") for i, v in enumerate(ins)]
            outputs = [_count(v, f"output_lens[{i}]") for i, v in enumerate(outs)]
        elif isinstance(doc, list):
            inputs, outputs = _pairs_of_objects(doc, "item")
        else:
            raise RequestFileError("expected a vllm bench result (input_lens, output_lens) or a list of "
                                   "request objects")
    else:
        raise RequestFileError(f"unknown file kind {suffix or '(none)'}; use .csv, .jsonl or .json")
    if not inputs:
        raise RequestFileError("holds no requests")
    if len(inputs) > MAX_REQUESTS:
        raise RequestFileError(f"holds {len(inputs):,} requests; at most {MAX_REQUESTS:,} are read "
                               "(a sample bins the same)")
    return inputs, outputs


def read_request_lengths(path: Path) -> tuple[list[int], list[int]]:
    """:func:`parse_request_lengths` of a file (RequestFileError when it cannot be read)."""
    if not path.is_file():
        raise RequestFileError("file not found" if not path.exists() else "not a regular file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise RequestFileError(f"larger than {MAX_FILE_BYTES // 2**20} MiB; bin a sample of it")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestFileError(f"cannot read it as UTF-8 text: {exc}") from exc
    return parse_request_lengths(text, path.suffix)


def _bins(value: Any, field: str, file: str) -> tuple[int, int]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 8 for v in value))
    if not ok:
        raise ScenarioError(f"expected two whole numbers from 1 to 8 (input bins, output bins), got {value!r}",
                            file=file, field=field, hint="e.g. lengths_bins: [3, 3]")
    return int(value[0]), int(value[1])


def describe(buckets: list[RequestBucket], requests: int, source: str, bins: tuple[int, int]) -> str:
    return (f"{source}: {requests:,} requests in {len(buckets)} buckets (natural breaks of log length, "
            f"{bins[0]} of input x {bins[1]} of output; each bucket at its requests' mean lengths)")


def expand_lengths_files(data: dict[str, Any], scenario_path: Path) -> dict[str, Any]:
    """``data`` (a parsed scenario) with every workload's ``lengths_file`` read and binned into
    ``lengths`` (and ``lengths_source``); errors name the scenario, the field and the file's line."""
    workloads = data.get("workloads")
    if not isinstance(workloads, list) or not any(isinstance(w, dict) and "lengths_file" in w for w in workloads):
        return data
    file = str(scenario_path)
    out = []
    for i, w in enumerate(workloads):
        if not (isinstance(w, dict) and "lengths_file" in w):
            out.append(w)
            continue
        field = f"workloads[{i}].lengths_file"
        ref = w["lengths_file"]
        if not isinstance(ref, str) or not ref.strip():
            raise ScenarioError("expected the path of a CSV, JSONL or JSON file of request lengths", file=file,
                                field=field)
        if "lengths" in w:
            raise ScenarioError("give lengths or lengths_file, not both", file=file, field=field)
        bins = _bins(w.get("lengths_bins", (3, 3)), f"workloads[{i}].lengths_bins", file)
        path = Path(ref) if Path(ref).is_absolute() else scenario_path.parent / ref
        try:
            inputs, outputs = read_request_lengths(path)
        except RequestFileError as exc:
            where = f" ({exc.where})" if exc.where else ""
            raise ScenarioError(f"{path}{where}: {exc}", file=file, field=field,
                                hint="the path is relative to the scenario's folder; see docs/scenario.md, "
                                     "'Length mixes'") from exc
        buckets = bin_requests(inputs, outputs, bins)
        w = {k: v for k, v in w.items() if k != "lengths_file"}
        w["lengths"] = [{"input_tokens": b.input_tokens, "output_tokens": b.output_tokens, "share": b.share}
                        for b in buckets]
        w["lengths_source"] = describe(buckets, len(inputs), ref, bins)
        out.append(w)
    return {**data, "workloads": out}
