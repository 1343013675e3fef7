"""The documents a newcomer reads: README stays short and links every page under docs/, and
every command of its quick start is run by a test or by CI."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_is_at_most_12_kb():
    assert len(README.encode()) <= 12 * 1024, len(README.encode())


def test_every_docs_page_is_linked_from_readme():
    linked = set(re.findall(r"\]\((docs/[^)#\s]+)", README))
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md")}
    for page in pages:
        folder = page.rsplit("/", 1)[0] + "/"
        assert page in linked or any(link.startswith(folder) for link in linked if folder != "docs/"), page
    for link in linked:
        assert (ROOT / link).exists(), f"README links {link}, which does not exist"


def quick_start_commands() -> list[str]:
    """The commands in README's code blocks before its first section after the set-up one."""
    start = README.index("## Set up and run")
    end = README.index("\n## ", start + 1)
    blocks = re.findall(r"```bash\n(.*?)```", README[start:end], re.S)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def tokens(command: str) -> list[str]:
    """What identifies a command: its program and arguments, but the core count (tests use 2)."""
    words = command.split()
    return [w for i, w in enumerate(words) if w != "all" and not (i and words[i - 1] == "--cores")]


def test_every_quick_start_command_is_run_by_a_test_or_ci():
    sources = [(ROOT / ".ci/run").read_text(), *(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))]
    commands = quick_start_commands()
    assert len(commands) >= 4, commands
    for command in commands:
        wanted = [t for t in tokens(command) if t not in ("--cores", "-e")]
        assert any(all(t in source for t in wanted) for source in sources), f"no test or CI runs: {command}"
