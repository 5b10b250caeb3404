"""Start-up: `python -c "import tcplab"` against `python -c "pass"` (same interpreter, same run)."""

from __future__ import annotations

import subprocess
import sys

from bench._common import median_time


def _python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True)


def run() -> list[dict]:
    base = median_time(lambda: _python("pass"), repeat=15, warmup=2)
    imp = median_time(lambda: _python("import tcplab"), repeat=15, warmup=2)
    full = median_time(lambda: _python("import tcplab.experiments, tcplab.observe"), repeat=7, warmup=1)
    return [{"what": "python -c pass", "seconds": base, "ratio": 1.0},
            {"what": "python -c 'import tcplab'", "seconds": imp, "ratio": imp / base,
             "import_cost_ms": (imp - base) * 1000},
            {"what": "import tcplab.experiments, tcplab.observe (no pandas yet)", "seconds": full, "ratio": full / base,
             "import_cost_ms": (full - base) * 1000}]


if __name__ == "__main__":
    from bench._common import table
    print(table(run(), ["what", "seconds", "ratio", "import_cost_ms"]))
