"""Copy config.yaml's attacks, mine and evaluation blocks (comments included) into
src/ciprivacy/defaults.yaml, the settings ciprivacy.api uses when config.yaml is not at hand (it
is not installed with the package). tests/test_api.py fails until this is run after an edit.

    python scripts/sync_defaults.py
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = ("attacks", "mine", "evaluation")
HEADER = """# The settings ciprivacy.api.evaluate (and `ciprivacy evaluate`) runs the attacks and measures
# with unless told otherwise: config.yaml's attacks, mine and evaluation blocks, copied here by
# scripts/sync_defaults.py because config.yaml is not installed with the package.
# tests/test_api.py fails when the two differ. The comments are config.yaml's.
"""


def blocks(text: str) -> list[str]:
    """The text of each top-level block in BLOCKS, with the comment lines just above it."""
    lines = text.splitlines(keepends=True)
    out = []
    for name in BLOCKS:
        key = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
        start = key
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1
        end = next((i for i in range(key + 1, len(lines)) if re.match(r"[A-Za-z]", lines[i])), len(lines))
        while end > start and (lines[end - 1].startswith("#") or not lines[end - 1].strip()):
            end -= 1  # comments above the next block are the next block's
        out.append("".join(lines[start:end]))
    return out


def main() -> None:
    text = (ROOT / "config.yaml").read_text()
    (ROOT / "src/ciprivacy/defaults.yaml").write_text(HEADER + "\n" + "\n".join(blocks(text)))


if __name__ == "__main__":
    main()
