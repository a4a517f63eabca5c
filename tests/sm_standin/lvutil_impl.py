# Shared body of the stand-in `lvutil`: SM's activation path, lvchange -ay and the check after.
CMD_LVCHANGE = "lvchange"
CMD_LVS = "lvs"


def make(util):
    def cmd_lvm(cmd):
        return util.pread2(cmd)

    def _checkActive(path):
        attr = cmd_lvm([CMD_LVS, "--noheadings", "-o", "lv_attr", path]).strip()
        return len(attr) > 4 and attr[4] == "a"

    def _activate(path):
        cmd = [CMD_LVCHANGE, "-ay", path]
        cmd_lvm(cmd)
        if not _checkActive(path):
            raise util.CommandException(-1, str(cmd), "LV not activated")

    def activateNoRefcount(path, refresh):
        _activate(path)
        if refresh:
            cmd_lvm([CMD_LVCHANGE, "--refresh", path])

    return activateNoRefcount
