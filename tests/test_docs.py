"""The docs stay true: reference pages are the schemas' (tools/gen_reference.py), and every page
under docs/ is reachable from README.md."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_reference_pages_are_current():
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_reference.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_every_docs_page_is_linked():
    linked = set()
    for page in [ROOT / "README.md", *ROOT.glob("docs/*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", page.read_text()):
            linked.add((page.parent / target).resolve())
    pages = {p.resolve() for p in ROOT.glob("docs/**/*.md")}
    assert pages - linked == set(), f"not linked from README or docs: {sorted(str(p) for p in pages - linked)}"


def test_links_between_pages_resolve():
    broken = []
    for page in [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *ROOT.glob("docs/**/*.md")]:
        for target in re.findall(r"\]\(([^)#\s:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []
