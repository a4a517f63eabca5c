"""xapi's whole database as comparable data, through the official client: every record keyed
by its class and uuid (a PBD by its SR and host: PBD.create makes a new uuid), every reference
inside replaced by what it names, lists of references sorted. `dump.py SOCKET` prints it as
JSON; tests compare a pool before and after `restore` with it."""

import json
import sys

CLASSES = ("host", "SR", "PBD", "VDI", "VBD", "VM", "pool")


def database(x):
    records = {c: getattr(x, c).get_all_records() for c in CLASSES}
    names = {}
    for c, recs in records.items():
        for ref, rec in recs.items():
            names[ref] = "%s:%s" % (c, rec.get("uuid"))
    for ref, rec in records["PBD"].items():
        names[ref] = "PBD:%s@%s" % (names.get(rec["SR"]), names.get(rec["host"]))

    def norm(v):
        if isinstance(v, str) and v.startswith("OpaqueRef:") and v != "OpaqueRef:NULL":
            return names.get(v, "dangling")
        if isinstance(v, list):
            return sorted((norm(i) for i in v), key=json.dumps)
        if isinstance(v, dict):
            return {norm(k): norm(i) for k, i in v.items()}
        return v
    out = {}
    for c, recs in records.items():
        for ref, rec in recs.items():
            rec = dict(rec)
            if c == "PBD":
                rec.pop("uuid")
            out[names[ref]] = norm(rec)
    return out


def main():
    import XenAPI
    s = XenAPI.Session("http://" + sys.argv[1].replace("/", "_") + "/", transport=XenAPI.UDSTransport())
    s.xenapi.login_with_password("root", "", "1.0", "dmheal-tests")
    try:
        db = database(s.xenapi)
        # Grouped by class for readers: {"SR": {key: record}, ...}.
        grouped = {}
        for key, rec in db.items():
            grouped.setdefault(key.split(":")[0], {})[key] = rec
        print(json.dumps(grouped, sort_keys=True))
    finally:
        s.xenapi.session.logout()


if __name__ == "__main__":
    main()
