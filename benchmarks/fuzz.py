"""Run the fuzz properties of :mod:`bertzoo.testing.fuzz` over many cases and print a summary.

    python benchmarks/fuzz.py                 # 10,000 cases: spec 6,000, forward 3,000, embed 1,000
    python benchmarks/fuzz.py --cases 50000 --seed 7

Every case must give a BertzooError or a correct result; failures are grouped by their first line.
Exit 1 when any case failed. The embed property needs the tiny model of tests/conftest.py
(transformers and the MiniLM tokenizer files, dev extra); without them it is skipped and said so.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from bertzoo.inference.truncation import TruncationWarning
from bertzoo.testing.fuzz import (
    EMBED_CASES,
    SPEC_DATA,
    FuzzFailure,
    check_embed,
    check_forward,
    check_spec,
    forward_cases,
)

SHARES = {"spec": 0.6, "forward": 0.3, "embed": 0.1}


def run(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], object], cases: int,
        seed_value: int) -> tuple[int, collections.Counter[str], dict[str, str]]:
    """Run ``check`` on ``cases`` drawn examples; failures are counted, not raised (no shrinking)."""
    failures: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}
    ran = 0

    @seed(seed_value)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(case: Any) -> None:
        nonlocal ran
        ran += 1
        try:
            check(case)
        except FuzzFailure as exc:
            last = str(exc).splitlines()[-1]  # the case's repr may span lines; the cause ends the message
            key = (last.split(" raised ", 1)[-1] if " raised " in last else last.rsplit("): ", 1)[-1])[:160]
            failures[key] += 1
            examples.setdefault(key, str(exc)[:600])

    prop()
    return ran, failures, examples


def tiny_model(folder: Path) -> Path | None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        from conftest import make_tiny_bert
        return make_tiny_bert(folder)
    except ImportError as exc:
        print(f"embed: skipped ({exc}; install the dev extra)")
        return None


def main() -> int:
    warnings.simplefilter("ignore", TruncationWarning)  # long fuzzed texts are truncated on purpose
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="total cases over all properties")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    total_failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp) / "tiny")
        props: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], object]]] = {
            "spec": (SPEC_DATA, check_spec), "forward": (forward_cases(), check_forward)}
        if model is not None:
            props["embed"] = (EMBED_CASES, lambda case: check_embed(model, case))
        for name, (strategy, check) in props.items():
            start = time.perf_counter()
            ran, failures, examples = run(name, strategy, check, int(args.cases * SHARES[name]), args.seed)
            failed = sum(failures.values())
            total_failed += failed
            print(f"{name:8s} {ran:6d} cases  {failed:5d} failed  {time.perf_counter() - start:7.1f} s")
            for key, count in failures.most_common():
                print(f"    {count:5d}  {key}\n           e.g. {examples[key]}")
    print("all cases gave a BertzooError or a correct result" if not total_failed else f"{total_failed} cases failed")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
