"""Generate the provisioned JSON: dashboards and alerting files. `--check` fails when stale.

    python -m dashboards.build            # write
    python -m dashboards.build --check    # exit 1 if a committed file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.alerts import mute_timings, rule_groups
from dashboards.boards import all_dashboards

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards" / "generated"
ALERTING = ROOT / "deploy" / "grafana" / "provisioning" / "alerting"
CURRENCY = "EUR"


def render(obj: Any) -> str:
    """Stable JSON text (sorted keys, two-space indent, final newline)."""
    return json.dumps(obj, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def outputs(currency: str = CURRENCY) -> dict[Path, str]:
    """Every generated file and its text."""
    files = {DASHBOARDS / f"{name}.json": render(board.build())
             for name, board in all_dashboards(currency).items()}
    files[ALERTING / "rules.json"] = render(rule_groups())
    files[ALERTING / "mute-timings.json"] = render(mute_timings())
    return files


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with --check report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale generated files (run `python -m dashboards.build`): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
