"""The layout shows the architecture, and stays that way: src/lib.rs groups the modules
(boundary, operations, decision, settings, layers, foundation), each group may use only the
groups after it, and no two modules use each other. Read from the sources; test modules
(`#[cfg(test)] mod tests`) may reach anywhere."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")


def groups():
    """{module: group index} from lib.rs's `// --- Group:` comments, in order."""
    out, group = {}, -1
    with open(os.path.join(SRC, "lib.rs")) as f:
        for line in f:
            if line.startswith("// --- "):
                group += 1
            m = re.match(r"\s*(?:pub(?:\(crate\))? )?mod (\w+);", line)
            if m and group >= 0:
                out[m.group(1)] = group
    return out


def module_of(path):
    rel = os.path.relpath(path, SRC)
    return rel.split(os.sep)[0].replace(".rs", "")


def uses():
    """{module: {modules its non-test code names as crate::x}}"""
    found = {}
    for top, _, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(top, name)
            with open(path) as f:
                text = f.read()
            text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
            me = module_of(path)
            if me == "test_support":  # test code (cfg(test)), like the tests modules
                continue
            for target in re.findall(r"\bcrate::(\w+)", text):
                if target != me:
                    found.setdefault(me, set()).add(target)
    return found


def test_every_module_is_in_a_group():
    g = groups()
    assert len(set(g.values())) == 6, g
    on_disk = {module_of(os.path.join(SRC, n)) for n in os.listdir(SRC)} - {"lib", "main"}
    assert on_disk - set(g) <= {"test_support"}, on_disk - set(g)


def test_no_module_uses_a_group_before_its_own():
    g = groups()
    upward = sorted((m, t) for m, ts in uses().items() for t in ts
                    if m in g and t in g and g[t] < g[m])
    assert upward == [], upward


def test_no_two_modules_use_each_other():
    u = uses()
    cycles = sorted((a, b) for a, ts in u.items() for b in ts if a < b and a in u.get(b, ()))
    assert cycles == [], cycles
