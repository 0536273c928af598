"""Run every benchmark side by side with its baseline and write docs/benchmarks.md.

Each case runs in its own subprocess so that its peak memory is its own. `--quick` runs small
sizes (a smoke test of the harness); the figures in docs/ come from a full run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import Result

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Case:
    """One subprocess invocation of a benchmark module."""

    module: str
    arguments: tuple[str, ...]
    quick_arguments: tuple[str, ...]


def _case(module: str, full: list[str], quick: list[str]) -> Case:
    return Case(module, tuple(full), tuple(quick))


def _cases() -> list[Case]:
    cases = []
    for backend in ("sqlite", "postgresql"):
        importing = "benchmarks.bench_import"
        cases += [
            _case(
                importing,
                ["--case", "patronage", "--backend", backend, "--rows", "1000000"],
                ["--case", "patronage", "--backend", backend, "--rows", "20000"],
            ),
            _case(
                importing,
                ["--case", "baseline", "--backend", backend, "--rows", "100000"],
                ["--case", "baseline", "--backend", backend, "--rows", "5000"],
            ),
        ]
    for backend in ("sqlite", "postgresql"):
        intake = "benchmarks.bench_intake"
        cases += [
            _case(
                intake,
                ["--case", "patronage", "--backend", backend, "--events", "200000"],
                ["--case", "patronage", "--backend", backend, "--events", "5000"],
            ),
            _case(
                intake,
                ["--case", "baseline", "--backend", backend, "--events", "50000"],
                ["--case", "baseline", "--backend", backend, "--events", "5000"],
            ),
        ]
    clv = "benchmarks.bench_clv"
    for stage in ("fit", "clv"):
        for case in ("patronage", "lifetimes"):
            cases.append(
                _case(
                    clv,
                    ["--case", case, "--stage", stage, "--customers", "1000000"],
                    ["--case", case, "--stage", stage, "--customers", "20000"],
                )
            )
    scoring = "benchmarks.bench_scoring"
    for case in ("patronage-duckdb", "pandas", "incremental"):
        check = [] if case == "pandas" else ["--check"]  # pandas again in the same process
        cases.append(
            _case(
                scoring,
                ["--case", case, "--customers", "1000000", "--orders", "10000000", *check],
                ["--case", case, "--customers", "10000", "--orders", "100000", *check],
            )
        )
    # The in-database scoring is measured at a tenth of the size: loading 10M orders into
    # SQLite or PostgreSQL row by row takes minutes (see docs/analytics.md).
    for case in ("patronage-sqlite", "patronage-postgresql", "incremental-sqlite",
                 "incremental-postgresql"):  # fmt: skip
        cases.append(
            _case(
                scoring,
                ["--case", case, "--customers", "100000", "--orders", "1000000", "--check"],
                ["--case", case, "--customers", "10000", "--orders", "100000", "--check"],
            )
        )
    loyalty = "benchmarks.bench_loyalty"
    for backend in ("sqlite", "postgresql"):
        cases += [
            _case(
                loyalty,
                ["--case", "service", "--backend", backend, "--n", "5000"],
                ["--case", "service", "--backend", backend, "--n", "300"],
            ),
            _case(
                loyalty,
                ["--case", "service", "--backend", backend, "--n", "2000", "--contention"],
                ["--case", "service", "--backend", backend, "--n", "200", "--contention"],
            ),
            _case(
                loyalty,
                ["--case", "api", "--backend", backend, "--n", "2000"],
                ["--case", "api", "--backend", backend, "--n", "200"],
            ),
            _case(
                loyalty,
                ["--case", "verify", "--backend", backend, "--n", "1000000"],
                ["--case", "verify", "--backend", backend, "--n", "10000"],
            ),
        ]
    return cases


def run_case(case: Case, quick: bool) -> Result:
    """Run one case in a fresh interpreter and parse the Result it prints."""
    arguments = case.quick_arguments if quick else case.arguments
    command = [sys.executable, "-m", case.module, *arguments]
    print("$", " ".join(command[1:]), flush=True)
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"benchmark failed: {' '.join(command)}")
    last_line = completed.stdout.strip().splitlines()[-1]
    result = replace(
        Result(**json.loads(last_line)),
        measured_at=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        size="quick" if quick else "full",
    )
    print(f"  {result.rate:,.0f} {result.unit}/s in {result.seconds:.2f} s, "
          f"peak {result.peak_mb:,.0f} MiB", flush=True)  # fmt: skip
    return result


def render(results: list[Result], quick: bool) -> str:
    """Render the results as the Markdown page docs/benchmarks.md."""
    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python -m benchmarks.run`); every line of one table was "
        "measured in the same run on the same machine, each case in its own process.",
        "",
        f"- written at: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; each section says when its lines "
        "were measured and at which sizes (`--only` re-runs some sections and keeps the others)",
        f"- machine: {platform.machine()}, {_cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "",
    ]
    by_benchmark: dict[str, list[Result]] = {}
    for result in results:
        by_benchmark.setdefault(result.benchmark, []).append(result)
    for benchmark, group in by_benchmark.items():
        runs = sorted({f"{r.measured_at or 'an earlier run'} ({r.size or 'size not recorded'})"
                       for r in group})  # fmt: skip
        lines += [
            f"## {benchmark}",
            "",
            f"Measured: {'; '.join(runs)}.",
            "",
            "| variant | backend | items | seconds | rate | peak memory | target | met |",
            "|---|---|---:|---:|---:|---:|---|---|",
        ]
        for r in group:
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            lines.append(
                f"| {r.variant} | {r.backend} | {r.items:,} {r.unit} | {r.seconds:.2f} | "
                f"{r.rate:,.0f} {r.unit}/s | {r.peak_mb:,.0f} MiB | {r.target} | {met} |"
            )
        notes = [f"- {r.variant} ({r.backend}): {r.note}" for r in group if r.note]
        lines += ["", *notes, ""] if notes else [""]
    return "\n".join(lines)


def _merge_with_previous(path: Path, fresh: list[Result]) -> list[Result]:
    """Keep the previous run's lines for benchmarks not re-run now (`--only`), in their order."""
    cache = path.with_suffix(".json")
    previous = [Result(**row) for row in json.loads(cache.read_text())] if cache.exists() else []
    fresh_keys = {(r.benchmark, r.variant, r.backend) for r in fresh}
    merged = [r for r in previous if (r.benchmark, r.variant, r.backend) not in fresh_keys]
    merged += fresh
    order = {name: index for index, name in enumerate(dict.fromkeys(r.benchmark for r in merged))}
    return sorted(merged, key=lambda r: order[r.benchmark])


def _sections(page: str) -> dict[str, str]:
    """The page's `## ` sections by heading, each with its text up to the next heading."""
    found: dict[str, str] = {}
    for block in page.split("\n## ")[1:]:
        heading = block.split("\n", 1)[0].strip()
        found[heading] = "## " + block.rstrip("\n") + "\n"
    return found


def _keep_sections(page: str, previous: str, rerun: set[str]) -> str:
    """Put back, word for word and in their order, the previous page's sections not re-run now."""
    fresh = _sections(page)
    body = [
        fresh.get(heading, text) if heading in rerun else text
        for heading, text in _sections(previous).items()
    ]
    body += [text for heading, text in fresh.items() if heading not in _sections(previous)]
    head = page.split("\n## ", 1)[0]
    return head.rstrip("\n") + "\n\n" + "\n".join(body).rstrip("\n")


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def main() -> None:
    """Run the benchmarks and write docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--only", default="", help="run only modules containing this text")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    options = parser.parse_args()
    results = [run_case(case, options.quick) for case in _cases() if options.only in case.module]
    page = render(_merge_with_previous(options.output, results) if options.only else results,
                  options.quick)  # fmt: skip
    if options.only and options.output.exists():
        rerun = {result.benchmark for result in results}
        page = _keep_sections(page, options.output.read_text(), rerun)
        results = _merge_with_previous(options.output, results)
    options.output.write_text(page + "\n")
    options.output.with_suffix(".json").write_text(
        json.dumps([asdict(result) for result in results], indent=1) + "\n"
    )
    print(f"wrote {options.output}")


if __name__ == "__main__":
    main()
