"""The dom0 RPM (issues 6 and 22): what it contains, its scriptlets, file modes and flags, a
scratch-root install and upgrade, the plugin's interpreter chosen at install time, rpmlint with
only the findings rpm/README.md accepts, glibc 2.17 compatibility of every ELF file, and the
XenCenter plug-in definition checked against XenCenter's published plug-in format."""

import glob
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "/usr/lib/dmheal/python"
# Where the scriptlets are pointed to put the hook's .pth in the scratch root (on dom0: the SM
# Python's own site-packages, which `dmheal hook install` finds from SM's driver).
SITE = "/usr/lib/python3.6/site-packages"


def run(*argv, **kw):
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=True, **kw).stdout


@pytest.fixture(scope="module")
def rpm_path():
    if shutil.which("rpmbuild") is None:
        pytest.fail("rpmbuild is not installed (scripts/setup installs Debian's rpm)")
    found = glob.glob(os.path.join(ROOT, "target", "rpm", "RPMS", "x86_64", "dmheal-*.rpm"))
    if not found:
        run(os.path.join(ROOT, "scripts", "rpm"))
        found = glob.glob(os.path.join(ROOT, "target", "rpm", "RPMS", "x86_64", "dmheal-*.rpm"))
    assert len(found) == 1, found
    return found[0]


def files_of(rpm_path):
    """{path: (mode string, flags)} from the package header."""
    out = run("rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEFLAGS:fflags} %{FILENAMES}\n]", rpm_path)
    table = {}
    for line in out.splitlines():
        mode, flags, path = line.split(" ", 2)
        table[path] = (mode, "" if flags == "(none)" else flags)
    return table


def test_the_package_installs_where_xapi_and_sm_look(rpm_path):
    files = files_of(rpm_path)
    expected = {
        "/usr/bin/dmheal": "-rwxr-xr-x",
        "/etc/xapi.d/plugins/dmheal": "-rwxr-xr-x",
        PKG + "/dmheal/__init__.py": "-rw-r--r--",
        PKG + "/dmheal/sm_hook.py": "-rw-r--r--",
        PKG + "/dmheal/hook_install.py": "-rw-r--r--",
        PKG + "/dmheal/dm_probe.py": "-rw-r--r--",
        PKG + "/dmheal/_core.abi3.so": "-rwxr-xr-x",
        "/etc/dmheal/dmheal.conf": "-rw-r--r--",
        "/etc/logrotate.d/dmheal": "-rw-r--r--",
        "/usr/share/man/man8/dmheal.8.gz": "-rw-r--r--",
        "/usr/share/dmheal/xencenter/dmheal/dmheal/dmheal.xcplugin.xml": "-rw-r--r--",
        "/usr/share/dmheal/xencenter/dmheal/dmheal/dmheal-vm.ps1": "-rw-r--r--",
        "/usr/share/dmheal/xencenter/dmheal/dmheal/dmheal-heal.ps1": "-rw-r--r--",
        "/var/lib/dmheal": "drwx------",
    }
    for path, mode in expected.items():
        assert path in files, path
        assert files[path][0] == mode, (path, files[path])
    assert "c" in files["/etc/dmheal/dmheal.conf"][1] and "n" in files["/etc/dmheal/dmheal.conf"][1]
    assert "c" in files["/etc/logrotate.d/dmheal"][1]
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in files)
    assert not any(p.endswith(".pth") for p in files)  # written by %post where SM's Python looks
    requires = run("rpm", "-qp", "--requires", rpm_path).split("\n")
    assert "logrotate" in requires and not any(r.startswith("python") for r in requires)
    # A fixed interpreter, never `env`: xapi's PATH does not choose it.
    first = run("sh", "-c", "rpm2cpio %s | cpio -i --quiet --to-stdout ./etc/xapi.d/plugins/dmheal | head -1" % rpm_path)
    assert first.strip() == "#!/usr/bin/python3"


def test_rpmlint_says_only_what_the_readme_accepts(rpm_path):
    """Debian's rpmlint (Fedora's defaults): every error and warning it gives is one
    rpm/README.md lists with its reason."""
    if shutil.which("rpmlint") is None:
        pytest.fail("rpmlint is not installed (scripts/setup installs Debian's rpmlint)")
    p = subprocess.run(["rpmlint", rpm_path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    said = {m.group(1) for m in re.finditer(r"^dmheal\.x86_64: [EW]: (\S+)", p.stdout, re.M)}
    with open(os.path.join(ROOT, "rpm", "README.md")) as f:
        accepted = set(re.findall(r"`[EW]: ([a-z0-9-]+)", f.read()))
    assert said <= accepted, (sorted(said - accepted), p.stdout)


def test_scriptlets_install_the_hook_and_erase_removes_it(rpm_path):
    scripts = run("rpm", "-qp", "--scripts", rpm_path)
    post = scripts.split("postinstall scriptlet")[1].split("preuninstall scriptlet")[0]
    preun = scripts.split("preuninstall scriptlet")[1]
    assert "/usr/bin/dmheal hook install" in post
    assert 'if [ "$1" -eq 0 ]' in preun and "/usr/bin/dmheal hook uninstall" in preun


def test_shipped_config_heals_and_version_is_consistent(rpm_path):
    with open(os.path.join(ROOT, "rpm", "dmheal.conf")) as f:
        assert re.search(r"^mode = heal$", f.read(), re.M)
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        version = re.search(r'^version = "(.*)"$', f.read(), re.M).group(1)
    assert run("rpm", "-qp", "--qf", "%{VERSION}", rpm_path) == version
    import dmheal
    assert dmheal.__version__ == version


@pytest.fixture
def scratch(rpm_path, tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(root)
    run("rpm", "--root", root, "--initdb")
    run("rpm", "--root", root, "-i", "--nodeps", "--noscripts", rpm_path)
    return root


def scriptlet(rpm_path, name, root, arg, extra_env=None):
    """Run a scriptlet of the package against the scratch root, as rpm would on dom0 (paths
    rebased into the root; $1 as rpm passes it)."""
    scripts = run("rpm", "-qp", "--scripts", rpm_path)
    body = scripts.split(name + " scriptlet")[1].split("\n", 1)[1]
    body = re.split(r"\n\S+ scriptlet", body)[0]
    body = body.replace("/usr/bin/dmheal", root + "/usr/bin/dmheal").replace(
        "/etc/xapi.d", root + "/etc/xapi.d")
    env = dict(os.environ, DMHEAL_PYTHON=sys.executable, PYTHONPATH=root + PKG,
               DMHEAL_SITE_DIR=root + SITE, **(extra_env or {}))
    return subprocess.run(["sh", "-c", body, "scriptlet", str(arg)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


def test_scratch_root_install_runs_and_scriptlets_work(rpm_path, scratch):
    root = scratch
    assert run(root + "/usr/bin/dmheal", "--version").strip().startswith("dmheal ")
    assert os.stat(root + "/etc/xapi.d/plugins/dmheal").st_mode & 0o777 == 0o755
    assert oct(os.stat(root + "/var/lib/dmheal").st_mode & 0o777) == "0o700"
    # The shipped Python package imports from its own directory, with its native module.
    env = dict(os.environ, PYTHONPATH=root + PKG, DMHEAL_BIN=root + "/usr/bin/dmheal")
    out = run(sys.executable, "-c", "import dmheal, os; print(dmheal.backend_name(), os.path.dirname(dmheal.__file__))", env=env)
    assert out.split() == ["native", root + PKG + "/dmheal"]
    os.makedirs(root + SITE)
    pth = root + SITE + "/dmheal-sm-hook.pth"
    # No warning from the hook's commands (runpy's 'found in sys.modules', once installed).
    post = scriptlet(rpm_path, "postinstall", root, 1)
    assert post.returncode == 0 and post.stderr == "", post.stderr
    assert os.path.exists(pth)
    assert open(pth).read().splitlines()[0] == root + PKG  # the package's directory, on SM's path
    again = scriptlet(rpm_path, "postinstall", root, 1)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert scriptlet(rpm_path, "preuninstall", root, 1).returncode == 0  # upgrade: keep the hook
    assert os.path.exists(pth)
    assert scriptlet(rpm_path, "preuninstall", root, 0).returncode == 0  # erase: remove it
    assert not os.path.exists(pth)


def test_post_gives_the_plugin_the_interpreter_that_has_xenapiplugin(rpm_path, scratch, tmp_path):
    """8.4 / 8.3: python3 has XenAPIPlugin; 8.2 CU1: only python (2.7) has it. The plugin's
    first line names that one, and it still runs the same file."""
    plugin = scratch + "/etc/xapi.d/plugins/dmheal"
    bins = tmp_path / "bins"
    bins.mkdir()
    for name, has in (("python3", False), ("python", True)):
        (bins / name).write_text("#!/bin/sh\n[ \"$2\" = 'import XenAPIPlugin' ] && exit %d\nexit 0\n" % (0 if has else 1))
        os.chmod(str(bins / name), 0o755)
    candidates = "%s %s" % (bins / "python3", bins / "python")
    p = scriptlet(rpm_path, "postinstall", scratch, 1, {"DMHEAL_PLUGIN_PYTHONS": candidates})
    assert p.returncode == 0, p.stderr
    lines = open(plugin).read().splitlines()
    assert lines[0] == "#!%s" % (bins / "python")
    assert "def doctor(args, xapi):" in "\n".join(lines)
    # Where python3 has it, python3 it is.
    (bins / "python3").write_text("#!/bin/sh\nexit 0\n")
    p = scriptlet(rpm_path, "postinstall", scratch, 1, {"DMHEAL_PLUGIN_PYTHONS": candidates})
    assert open(plugin).readline().strip() == "#!%s" % (bins / "python3")


def test_upgrade_keeps_config_and_journal(rpm_path, scratch):
    root = scratch
    conf = root + "/etc/dmheal/dmheal.conf"
    with open(conf, "w") as f:
        f.write("mode = observe\n")
    journal = root + "/var/lib/dmheal/journal.jsonl"
    with open(journal, "w") as f:
        f.write('{"id": 1}\n')
    run("rpm", "--root", root, "-U", "--replacepkgs", "--nodeps", "--noscripts", rpm_path)
    assert open(conf).read() == "mode = observe\n"
    assert open(journal).read() == '{"id": 1}\n'
    run("rpm", "--root", root, "-e", "--nodeps", "--noscripts", "dmheal")
    assert os.path.exists(journal) and not os.path.exists(root + "/usr/bin/dmheal")


def glibc_versions(path):
    out = run("objdump", "-T", path)
    return {tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_([0-9.]+)", out)}


def test_every_shipped_elf_runs_on_glibc_2_17(rpm_path, tmp_path):
    root = str(tmp_path / "x")
    os.makedirs(root)
    subprocess.run("rpm2cpio %s | cpio -idm --quiet" % rpm_path, shell=True, cwd=root, check=True)
    elves = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    elves.append(p)
    assert len(elves) == 2, elves  # the binary and the native module
    for p in elves:
        versions = glibc_versions(p)
        assert versions, p
        assert max(versions) <= (2, 17), (p, sorted(versions)[-3:])


def test_the_check_would_catch_a_newer_glibc():
    """The same check on this machine's own /bin/ls (Debian 12, glibc 2.36) finds newer symbols."""
    assert max(glibc_versions("/bin/ls")) > (2, 17)


# XenCenter's plug-in loader, as xenadmin implements it (XenAdmin/Plugins/PluginDescriptor.cs,
# Features/Feature.cs, Features/MenuItemFeature.cs, XenModel/XenSearch/SearchMarshalling.cs and
# QueryScope.cs): root XenCenterPlugin in the plug-in namespace, version "1", "1.0.0.0" or "2";
# only MenuItem, TabPage, GroupMenuItem, Search and MethodList children (anything else disables
# the plug-in); a MenuItem has a name, a menu from PluginMenu (case-sensitive), contextmenu and
# serialized from their enums, exactly one child node — comments count — that is a Shell,
# PowerShell or XenServerPowerShell command with a filename. `search` must name a Search of the
# file (an unknown one silently lifts the restriction); a Search has uuid, name, major_version
# <= 2 and a Query whose QueryScope lists ObjectTypes.
NS = "{http://www.citrix.com/XenCenter/Plugins/schema}"
MENUS = {"file", "view", "pool", "server", "vm", "storage", "templates", "tools", "window", "help"}
CONTEXT_MENUS = {"none", "pool", "server", "vm", "storage", "template", "folder"}
COMMANDS = {"Shell", "PowerShell", "XenServerPowerShell"}
OBJECT_TYPES = {"Pool", "Server", "DisconnectedServer", "VM", "Snapshot", "UserTemplate",
                "DefaultTemplate", "RemoteSR", "LocalSR", "VDI", "Network", "Folder", "Appliance",
                "DockerContainer"}


def test_xencenter_plugin_loads_by_the_loaders_rules():
    import xml.dom.minidom
    folder = os.path.join(ROOT, "xencenter", "dmheal", "dmheal")
    # XenCenter loads Plugins\<organization>\<name>\<name>.xcplugin.xml
    definition = os.path.join(folder, "dmheal.xcplugin.xml")
    root = ET.parse(definition).getroot()
    assert root.tag == NS + "XenCenterPlugin"
    assert root.get("version") in ("1", "1.0.0.0", "2")
    for child in root:
        assert child.tag[len(NS):] in ("MenuItem", "GroupMenuItem", "TabPage", "Search", "MethodList")
    searches = {}
    for s in root.findall(NS + "Search"):
        assert s.get("uuid") and s.get("name")
        assert int(s.get("major_version")) <= 2
        query = list(s)[0]
        assert query.tag == NS + "Query"
        scope = query.find(NS + "QueryScope")
        kinds = {k.tag[len(NS):] for k in scope}
        assert kinds and kinds <= OBJECT_TYPES
        searches[s.get("uuid")] = kinds
    items = root.findall(NS + "MenuItem")
    scope_of = {}
    for item in items:
        assert item.get("name")
        assert item.get("menu") in MENUS
        assert item.get("contextmenu", item.get("menu")) in CONTEXT_MENUS
        assert item.get("serialized", "none") in ("none", "global", "obj")
        assert item.get("search") in searches, "an unknown search lifts the restriction"
        assert item.get("icon") is None or os.path.exists(os.path.join(folder, item.get("icon")))
        scope_of[item.get("name")] = (item.get("menu"), item.get("label"), searches[item.get("search")])
        children = list(item)
        assert len(children) == 1 and children[0].tag[len(NS):] in COMMANDS
        filename = children[0].get("filename")
        assert filename and filename.startswith("Plugins\\dmheal\\dmheal\\")
        assert os.path.exists(os.path.join(folder, filename.split("\\")[-1]))
    # Exactly one child node per MenuItem, counting comments as .NET's XmlDocument does.
    dom = xml.dom.minidom.parse(definition)
    for item in dom.getElementsByTagName("MenuItem"):
        nodes = [n for n in item.childNodes
                 if not (n.nodeType == n.TEXT_NODE and not n.data.strip())]
        assert len(nodes) == 1, item.getAttribute("name")
    assert scope_of == {
        "dmheal-why-vm": ("vm", "Why won't this VM start? (dmheal)", {"VM"}),
        "dmheal-diagnose-server": ("server", "Diagnose storage (dmheal)", {"Server"}),
        "dmheal-heal-server": ("server", "Heal proven ghosts (dmheal)", {"Server"}),
        "dmheal-diagnose-storage": ("storage", "Diagnose storage (dmheal)", {"RemoteSR", "LocalSR"}),
    }


def test_the_heal_items_script_runs_the_batch_dry_run_and_shows_the_apply_command():
    script = open(os.path.join(ROOT, "xencenter", "dmheal", "dmheal", "dmheal-heal.ps1")).read()
    assert '-Plugin "dmheal" -Fn "heal_all" -Args @{}' in script  # a dry run: no apply argument
    assert "fn=heal_all args:apply=true" in script and "dmheal heal --all --apply" in script
    # The fields it shows are the batch's JSON fields.
    for field in ("results", "action", "dm_name", "message", "counts", "would_remove", "ghosts"):
        assert "." + field in script, field


def test_the_vm_items_script_calls_the_plugins_vm_function_on_the_coordinator():
    script = open(os.path.join(ROOT, "xencenter", "dmheal", "dmheal", "dmheal-vm.ps1")).read()
    assert '-Plugin "dmheal" -Fn "vm"' in script and "$pool.master.opaque_ref" in script
    assert '$obj["objUuid"]' in script and '$obj["class"] -ne "VM"' in script
