"""Correctness under scale (issue 7): a host of 1,000 device-mapper mappings built in the
user-mode kernel (LVM metadata restored with vgcfgrestore, mappings created in batches): 20
uuid-less ghosts, 20 stale-uuid ghosts (a removed LV's uuid), 20 held open by processes, 20
named by a paused tapdisk, the rest LVM's own. The scan must find every ghost and call nothing
else one; `heal --all --apply` (issue 25) must then remove exactly the ghosts. (5,000 runs in
bench/scale.py and bench/batch.py.)"""

import json
import os

import uml

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")

SCRIPT = r"""
export TAPCTL_LIST_FILE="$WORK/taps" PATH="$HELPERS/../doubles:$PATH"
"$PYTHON" "%s/scale_host.py" 1000 > "$OUT/build.txt" 2>&1 || { cat "$OUT/build.txt"; exit 1; }
capture scan "$DMHEAL" --json --xapi none scan
capture contract "$DMHEAL" contract
dmsetup info -c --noheadings -o name,uuid,open | sort > "$OUT/dm_after.txt"
capture batch "$DMHEAL" --json --xapi none heal --all --apply
dmsetup info -c --noheadings -o name | sort > "$OUT/dm_after_batch.txt"
"""


def test_a_scan_of_1000_mappings_finds_exactly_the_ghosts(kernel, dmheal_bin):
    r = kernel.run(SCRIPT % BENCH, dmheal_bin, timeout=600)
    assert r.rc == 0, r.output
    truth = json.loads(r.file("truth.json"))
    report = json.loads(r.file("scan.out"))
    assert int(r.file("scan.rc")) == 3  # ghosts found, none removed
    found = {m["dm_name"]: m["verdict"] for m in report["mappings"]}
    expected = {"ghost": "ghost", "stale": "ghost", "held": "in-use", "tapdisk": "in-use",
                "healthy": "healthy"}
    assert set(found) == set(truth["roles"])
    wrong = {n: (role, found[n]) for n, role in truth["roles"].items() if found[n] != expected[role]}
    assert wrong == {}
    # Every reason given is one `dmheal contract` lists, with its layer.
    listed = {c["code"]: c["layer"] for c in json.loads(r.file("contract.out"))["reason_codes"]}
    given = {(x["code"], x["layer"]) for m in report["mappings"] for x in m["reasons"]}
    assert {code for code, _ in given} - set(listed) == set()
    assert all(listed[code] == layer for code, layer in given)
    assert report["counts"] == {"mappings": 1000, "ghost": 40, "in_use": 40, "suspicious": 0,
                                "healthy": 920, "inactive_lvs": 0}
    # A scan changes nothing: every mapping is still there.
    assert len(r.file("dm_after.txt").splitlines()) == 1000

    # The batch removes exactly the ghosts, each journalled, and nothing else.
    batch = json.loads(r.file("batch.out"))
    assert int(r.file("batch.rc")) == 0
    ghosts = {n for n, role in truth["roles"].items() if role in ("ghost", "stale")}
    assert {x["dm_name"] for x in batch["results"] if x["action"] == "removed"} == ghosts
    assert batch["counts"]["removed"] == 40 and batch["counts"]["refused"] == 0
    assert len({x["journal_id"] for x in batch["results"]}) == 40
    left = set(r.file("dm_after_batch.txt").split())
    assert left == set(truth["roles"]) - ghosts
