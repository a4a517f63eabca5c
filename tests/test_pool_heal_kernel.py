"""`dmheal pool heal` on the real kernel (issue 25): a pool of four in the xapi simulator,
xcp-a down, xcp-b and xcp-c up with the real plugin (both on this kernel, so both see the one
ghost and race to heal it), xcp-d never answering. The dry run asks every host that is up and
says each one's answer; --apply removes the ghost exactly once across the pool (the other host
finds it gone, or never sees it), says the down host skipped and the silent one failed at its
deadline; on a terminal it shows host n of N."""

import json
import os
import re
import sys

import uml

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "xapi_sim")
sys.path.insert(0, SIM)

import pools  # noqa: E402

SCRIPT = r"""
export DMHEAL_BIN="$DMHEAL" PATH="$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="%(sim)s:$PYTHONPATH"
make_sr_vg
make_ghost
start_xapi_sim "%(scenario)s"

capture dry "$DMHEAL" --json pool heal --host-timeout 4
capture dry_text "$DMHEAL" pool heal --host-timeout 4
dm_state "$DM_NAME" > "$OUT/state.after_dry"
"$PYTHON" "$HELPERS/on_a_terminal.py" "$OUT/apply.tty" "$DMHEAL" --json pool heal --apply \
    --host-timeout 4 > "$OUT/apply.out"
echo $? > "$OUT/apply.rc"
dm_state "$DM_NAME" > "$OUT/state.after_apply"
capture lvchange lvchange -ay "$VG/$LV"
cat /run/dmheal/journal-*.jsonl > "$OUT/journals.jsonl"; ls -la /run/dmheal > "$OUT/ls"; true
"""


def test_a_pool_heal_removes_the_ghost_once_and_says_every_host(kernel, dmheal_bin, tmp_path):
    scenario = pools.write(pools.migration_failed(hosts=4, down=(0,), hanging=(3,)),
                           str(tmp_path / "pool.json"))
    r = kernel.run(SCRIPT % {"sim": SIM, "scenario": scenario}, dmheal_bin, timeout=300)
    assert r.rc == 0, r.output
    a, b, c, d = (pools.host_name(i) for i in range(4))

    # The dry run: each host that is up asked; the two that answer each see the ghost.
    dry = json.loads(r.file("dry.out"))
    assert int(r.file("dry.rc")) == 1  # xcp-d did not answer: the pool is not known clean
    hosts = {h["host_name"]: h for h in dry["hosts"]}
    assert hosts[a]["status"] == "skipped" and hosts[a]["state"] == "down"
    assert hosts[d]["status"] == "failed" and "did not answer within 4 s" in hosts[d]["error"]
    for name in (b, c):
        assert hosts[name]["status"] == "asked", hosts[name].get("error")
        answer = hosts[name]["answer"]
        assert answer["apply"] is False and answer["counts"]["would_remove"] == 1, answer
        assert answer["results"][0]["dm_name"] == uml.DM_NAME
    assert dry["counts"]["batch"]["would_remove"] == 2 and dry["counts"]["batch"]["removed"] == 0
    assert (dry["counts"]["asked"], dry["counts"]["skipped"], dry["counts"]["failed"]) == (2, 1, 1)
    assert r.file("state.after_dry").split()[0] == uml.DM_NAME
    text = r.file("dry_text.out")
    assert "run again with --apply" in text and "did not answer within 4 s" in text

    # --apply: removed once across the pool; the other host found it gone or never saw it.
    out = json.loads(r.file("apply.out"))
    assert int(r.file("apply.rc")) == 1
    assert out["counts"]["batch"]["removed"] == 1 and out["counts"]["batch"]["failed"] == 0, out["counts"]
    answers = {h["host_name"]: h["answer"] for h in out["hosts"] if h.get("answer")}
    assert set(answers) == {b, c}
    other = [x for x in answers.values() if x["counts"]["removed"] == 0]
    assert len(other) == 1
    assert other[0]["counts"]["ghosts"] == 0 or other[0]["results"][0]["action"] == "already-gone"
    assert r.file("state.after_apply").strip() == "absent"
    assert int(r.file("lvchange.rc")) == 0, r.file("lvchange.err")
    removals = [json.loads(l) for l in r.file("journals.jsonl").splitlines() if '"removal"' in l]
    assert [e["dm_name"] for e in removals] == [uml.DM_NAME]

    # On a terminal: a host counted as each answers, the line cleared at the end.
    tty = r.file("apply.tty")
    assert re.search(r"host [123] of 3: xcp-[bcd] answered", tty), tty
    assert tty.rstrip("\n").endswith("\x1b[2K"), repr(tty[-200:])
