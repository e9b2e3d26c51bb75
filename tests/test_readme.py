"""The README's first example runs as shown, on both transports, and does what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_example() -> str:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", readme, re.S)[0]


def test_the_first_example_prints_its_event_once_per_run_on_each_transport(bus_url):
    code = first_example().replace('url="memory://"', f"url={bus_url!r}")
    assert bus_url in code
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("placed o-1 correlation ")


def test_the_readme_map_of_the_sample_shop_is_what_busline_map_draws():
    readme = (ROOT / "README.md").read_text()
    [shown] = re.findall(r"```mermaid\n(.*?)```", readme, re.S)
    shop = [
        f"sample_app.{name}:bus"
        for name in (
            "checkout",
            "fulfilment",
            "payment",
            "inventory",
            "shipping",
            "loyalty",
            "notification",
        )
    ]
    result = subprocess.run(
        [sys.executable, "-m", "busline", "map", *shop],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown
