"""Where the test suite's time goes, from pytest's JUnit XML report.

`.ci/run` prints this after `make test`: the time of each test folder (the
sum of its tests' setup, call and teardown, so a folder's share of the work
whatever the number of worker processes) and the slowest files. docs/testing.md
keeps the table. Then the head of each failure and error, last: CI keeps only
the tail of the output, and a flake's cause (the warning behind an
"unraisable exception" error, say) is in pytest's long report far above.

    python .ci/test_times.py .cache/junit.xml [--files N] [--lines N]
"""

from __future__ import annotations

import argparse
import collections
import xml.etree.ElementTree as ET


def _folder(classname: str) -> tuple[str, str]:
    # pytest names a test's class path "tests.e2e.test_flows" (or
    # "tests.e2e.test_flows.TestX"): the folder is its first two parts.
    parts = classname.split(".")
    module = [p for p in parts if not p[:1].isupper()]
    folder = "/".join(module[:2]) if len(module) > 2 else module[0]
    return folder, "/".join(module) + ".py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--files", type=int, default=15)
    parser.add_argument("--lines", type=int, default=60, help="of each failure's report")
    args = parser.parse_args()
    folders: dict[str, float] = collections.Counter()
    counts: dict[str, int] = collections.Counter()
    files: dict[str, float] = collections.Counter()
    failures: list[tuple[str, str]] = []
    for case in ET.parse(args.report).getroot().iter("testcase"):  # noqa: S314
        for kind in ("failure", "error"):
            for element in case.iter(kind):
                name = f"{kind}: {case.get('classname')}::{case.get('name')}"
                failures.append((name, f"{element.get('message', '')}\n{element.text or ''}"))
        folder, path = _folder(case.get("classname", "?"))
        seconds = float(case.get("time", 0) or 0)
        folders[folder] += seconds
        counts[folder] += 1
        files[path] += seconds
    total = sum(folders.values())
    print(f"\ntest time by folder (sum over workers; {total / 60:.1f} min in all)")
    print(f"{'folder':<24}{'tests':>7}{'minutes':>9}{'share':>7}")
    for folder, seconds in sorted(folders.items(), key=lambda kv: -kv[1]):
        share = seconds / total if total else 0
        print(f"{folder:<24}{counts[folder]:>7}{seconds / 60:>9.1f}{share:>7.0%}")
    print(f"\nslowest {args.files} files")
    for path, seconds in sorted(files.items(), key=lambda kv: -kv[1])[: args.files]:
        print(f"{seconds:>8.1f} s  {path}")
    for name, report in failures:
        lines = report.strip().splitlines()
        print(f"\n{name}")
        # The last lines: where it was raised, and what (a chained cause last).
        print("\n".join(lines[-args.lines :]))


if __name__ == "__main__":
    main()
