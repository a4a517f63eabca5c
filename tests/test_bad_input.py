"""Bad input gets a clear message and a non-zero exit, and changes nothing. These run on the
host, which has no device-mapper: exactly the "no /dev/mapper/control" case."""

import json
import os
import subprocess

import pytest

from conftest import HOST_HAS_DEVICE_MAPPER, run_cli

HOSTILE = [
    "a;rm -rf /",
    "$(reboot)",
    "`id`",
    "vg-lv|cat",
    "../../etc/passwd",
    "VG_XenStorage--x-..",
    "/etc/passwd",
    "/dev/../etc/passwd",
    "/dev/vg/../lv",
    "/dev/sda",
    "/dev/mapper/x y",
    "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4zz",
    "",
    "x" * 200,
]


@pytest.mark.parametrize("target", HOSTILE)
@pytest.mark.parametrize("command", [["inspect"], ["heal", "--apply"]])
def test_hostile_targets_are_refused_before_anything_runs(dmheal_bin, tmp_path, command, target):
    journal = tmp_path / "journal.jsonl"
    p = run_cli(dmheal_bin, "--journal", str(journal), *command, "--", target)
    assert p.returncode == 2, p.stderr
    assert "not a valid" in p.stderr or "is not a volume path" in p.stderr
    assert not journal.exists()


def test_hostile_target_in_json_mode_is_still_exit_2(dmheal_bin):
    p = run_cli(dmheal_bin, "--json", "inspect", "--", "a;b")
    assert p.returncode == 2
    assert "character ';' is not allowed" in p.stderr


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1.5", "99999999999999999999999"])
def test_restore_ids_must_be_positive_numbers(dmheal_bin, bad):
    p = run_cli(dmheal_bin, "restore", "--", bad)
    assert p.returncode == 2
    assert "restore" in p.stderr or "journal entry id" in p.stderr


@pytest.mark.skipif(HOST_HAS_DEVICE_MAPPER, reason="this host has device-mapper")
def test_no_device_mapper_is_a_clear_error(dmheal_bin, tmp_path):
    journal = tmp_path / "journal.jsonl"
    p = run_cli(dmheal_bin, "--json", "--journal", str(journal), "heal", "--apply", "vg-lv")
    assert p.returncode == 1
    err = json.loads(p.stdout)["error"]
    assert err["kind"] == "no_device_mapper"
    assert "/dev/mapper/control" in err["message"] and "dm-mod" in err["message"]
    assert not journal.exists()


def test_unreadable_journal_is_a_clear_error(dmheal_bin, tmp_path):
    # A directory where the journal file should be.
    p = run_cli(dmheal_bin, "--json", "--journal", str(tmp_path), "journal")
    assert p.returncode == 1
    err = json.loads(p.stdout)["error"]
    assert err["kind"] == "journal" and str(tmp_path) in err["message"]


def test_corrupt_journal_names_the_line(dmheal_bin, tmp_path):
    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"id": 1, "oops": true}\n')
    before = journal.read_text()
    p = run_cli(dmheal_bin, "--journal", str(journal), "journal")
    assert p.returncode == 1
    assert "line 1" in p.stderr
    p = run_cli(dmheal_bin, "--journal", str(journal), "restore", "1")
    assert p.returncode == 1
    assert journal.read_text() == before


def test_restore_of_an_unknown_entry_is_not_found(dmheal_bin, tmp_path):
    journal = tmp_path / "journal.jsonl"
    p = run_cli(dmheal_bin, "--json", "--journal", str(journal), "restore", "7")
    assert p.returncode == 1
    assert json.loads(p.stdout)["error"]["kind"] == "not_found"


def test_help_documents_exit_codes(dmheal_bin):
    p = run_cli(dmheal_bin, "--help")
    assert p.returncode == 0
    assert "3 ghost (or doctor finding) found, not fixed" in p.stdout and "4 refused, in use" in p.stdout


@pytest.mark.parametrize("json_mode", [True, False])
def test_a_stdout_that_takes_nothing_is_said_on_stderr_not_a_crash(dmheal_bin, json_mode):
    """A full disk (or a reader gone) on stdout: the error still reaches stderr and the exit
    code is the operation's, never a Rust panic (exit 101)."""
    args = [dmheal_bin] + (["--json"] if json_mode else []) + ["--journal", "/nonexistent/j", "inspect", "vg-lv"]
    with open("/dev/full", "w") as full:
        p = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode not in (0, 101), p.stderr
    assert "panicked" not in p.stderr, p.stderr
    assert "dmheal: error:" in p.stderr, p.stderr
    with open("/dev/full", "w") as full:
        p = subprocess.run([dmheal_bin, "contract"], stdout=full, stderr=subprocess.PIPE,
                           universal_newlines=True)
    assert p.returncode == 0 and "panicked" not in p.stderr, p.stderr
    assert "could not be written to stdout" in p.stderr, p.stderr


def test_call_says_on_stderr_when_stdout_takes_nothing(dmheal_bin):
    """`dmheal call` is what the Python facade talks to: an answer it could not write is said
    on stderr, not lost silently."""
    with open("/dev/full", "w") as full:
        p = subprocess.run([dmheal_bin, "call"], input='{"op": "contract"}', stdout=full,
                           stderr=subprocess.PIPE, universal_newlines=True)
    assert "panicked" not in p.stderr, p.stderr
    assert "could not be written to stdout" in p.stderr, p.stderr
