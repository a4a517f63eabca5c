"""The docs a newcomer reads stay true to the repository (issue 23): every relative link in a
Markdown file resolves to a file or directory that exists, every `src/...`, `tests/...`,
`docs/...` path named in backticks exists, and the README stays short with its two set-up
commands near the top."""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path in backticks that names a file of this repository (not a host path like /etc/...).
NAMED_PATH = re.compile(r"`((?:src|tests|docs|python|bench|scripts|rpm|xapi-plugin|xencenter)/[A-Za-z0-9_./-]+)`")


def markdown_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=ROOT, stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout.split()
    # Files written for the tests' stand-ins describe SM, not this repository's layout.
    return [f for f in out if os.path.exists(os.path.join(ROOT, f))]


def test_every_relative_link_and_named_path_resolves():
    broken = []
    files = markdown_files()
    assert "README.md" in files and "docs/architecture.md" in files, files
    for md in files:
        text = open(os.path.join(ROOT, md)).read()
        base = os.path.dirname(os.path.join(ROOT, md))
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            path = target.split("#", 1)[0]
            if not os.path.exists(os.path.normpath(os.path.join(base, path))):
                broken.append("%s: link %s" % (md, target))
        for named in NAMED_PATH.findall(text):
            path = named.rstrip(".").split("::")[0]
            if "<" in path or "*" in path:
                continue
            if not os.path.exists(os.path.join(ROOT, path)):
                broken.append("%s: names %s" % (md, named))
    assert broken == [], "\n".join(broken)


def test_the_checker_catches_a_broken_link(tmp_path):
    # The link pattern finds what a Markdown link is, so the test above can fail.
    assert LINK.findall("see [the guide](docs/nowhere.md) and [x](https://e.org)") == [
        "docs/nowhere.md", "https://e.org"]
    assert NAMED_PATH.findall("in `src/app.rs` and `/etc/dmheal`") == ["src/app.rs"]


def test_no_doc_names_a_file_the_repository_does_not_have():
    # The team's design notes live outside the repository; a reader here cannot open them.
    for md in markdown_files():
        text = open(os.path.join(ROOT, md)).read()
        assert "DESIGN.md" not in text, md


def test_the_readme_is_short_and_starts_with_the_two_set_up_commands():
    lines = open(os.path.join(ROOT, "README.md")).read().splitlines()
    assert len(lines) <= 200, len(lines)
    blocks = re.findall(r"```sh\n(.*?)```", "\n".join(lines[:40]), re.S)
    assert blocks, "no set-up commands near the top"
    commands = [l.split("#")[0].strip() for l in blocks[0].splitlines() if l.split("#")[0].strip()]
    assert commands == ["./scripts/demo", "./scripts/test"], commands
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "scripts/test" in ci
