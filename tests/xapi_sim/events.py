"""xapi's events and tasks, as much as a client that waits on a task needs (xen-api's
xapi_event.ml, task semantics):

* `Async.<class>.<method>(args)` answers a task ref at once and runs the call; the task's
  status goes pending -> success (its `result` the XML-RPC encoding of the call's value) or
  failure (`error_info` the error's code and params);
* `event.from(classes, token, timeout)` answers `{events, valid_ref_counts, token}`: every
  event of those classes (`*` for all, `task`, `vm`, ..., lower case) after the token, or after
  waiting up to `timeout` seconds for one; each event `{id, timestamp, class, operation, ref,
  snapshot}`, `operation` add / mod / del (a del has no snapshot). The token is opaque to the
  client; here the last event's number.
"""

import threading
import time

try:
    import xmlrpc.client as xmlrpclib
except ImportError:  # pragma: no cover
    import xmlrpclib


class Events(object):
    def __init__(self):
        self.events = []
        self.cond = threading.Condition()
        self.next_id = 1

    def emit(self, cls, operation, ref, snapshot=None):
        with self.cond:
            event = {"id": str(self.next_id), "timestamp": "0.0", "class": cls.lower(),
                     "operation": operation, "ref": ref}
            if operation != "del":
                event["snapshot"] = dict(snapshot or {})
            self.events.append(event)
            self.next_id += 1
            self.cond.notify_all()

    def since(self, classes, token, timeout, counts):
        wanted = {c.lower() for c in classes}
        last = int(token) if str(token).isdigit() else 0

        def matching():
            return [e for e in self.events if int(e["id"]) > last and
                    ("*" in wanted or e["class"] in wanted or
                     any(w == "%s/%s" % (e["class"], e["ref"]) for w in wanted))]
        deadline = time.time() + float(timeout)
        with self.cond:
            found = matching()
            while not found and time.time() < deadline:
                self.cond.wait(max(0.0, deadline - time.time()))
                found = matching()
            new_token = str(self.next_id - 1)
        return {"events": found, "valid_ref_counts": counts, "token": new_token}


def task_record(uuid, name):
    now = time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime())
    return {"uuid": uuid, "name_label": name, "name_description": "", "status": "pending",
            "progress": 0.0, "result": "", "error_info": [], "created": now, "finished": "",
            "allowed_operations": ["cancel"], "current_operations": {}, "type": "<none/>",
            "other_config": {}, "subtasks": [], "subtask_of": "OpaqueRef:NULL"}


def finish(task, value=None, error=None):
    """A task done: its result as xapi gives it (the value's XML-RPC encoding), or its error."""
    task["progress"] = 1.0
    task["finished"] = time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime())
    task["allowed_operations"] = []
    if error is None:
        task["status"] = "success"
        encoded = xmlrpclib.dumps((value if value is not None else "",), methodresponse=True)
        start = encoded.index("<value>")
        task["result"] = encoded[start:encoded.rindex("</value>") + len("</value>")]
    else:
        task["status"] = "failure"
        task["error_info"] = [error.code] + list(error.params)
