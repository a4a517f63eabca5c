"""XenAPIPlugin for the tests: dom0 ships this module with xapi, PyPI's XenAPI does not, so the
test suite carries one written from the plugin protocol xapi uses:

argv[1] is an XML-RPC methodCall(fn, [session_ref, {str: str}]); the plugin prints an XML-RPC
methodResponse whose value is {Status: Success, Value: <string>} or {Status: Failure,
ErrorDescription: [code, params...]}. A `Failure(code, params)` gives [code] + params; any other
exception gives [XENAPI_PLUGIN_FAILURE, fn, exception class, message]; an unknown function
gives [UNKNOWN_XENAPI_PLUGIN_FUNCTION, fn]. The first argument a plugin function receives is a
XenAPI session object whose `_session` is the session ref xapi passed. Python 2.7 (8.2's
plugins) and 3.
"""

import sys

import XenAPI

try:
    import xmlrpc.client as xmlrpclib  # novermin (2.7: the except below)
except ImportError:  # Python 2.7, as on Citrix Hypervisor 8.2
    import xmlrpclib  # novermin (3: the try above)


class Failure(Exception):
    def __init__(self, code, params):
        Exception.__init__(self)
        self.params = [code] + list(params)

    def __str__(self):
        return str(self.params)


def _respond(value):
    print(xmlrpclib.dumps((value,), methodresponse=True, allow_none=True))


def dispatch(fn_table):
    if len(sys.argv) != 2:
        raise Exception("Incorrect number of commandline arguments")
    params, methodname = xmlrpclib.loads(sys.argv[1])
    session_ref, args = params[0], params[1]
    if methodname not in fn_table:
        _respond({"Status": "Failure", "ErrorDescription": ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", methodname]})
        return
    session = XenAPI.xapi_local()
    session._session = session_ref
    try:
        result = fn_table[methodname](session, args)
        _respond({"Status": "Success", "Value": result})
    except SystemExit:
        raise
    except Failure as e:
        _respond({"Status": "Failure", "ErrorDescription": e.params})
    except Exception as e:
        _respond({"Status": "Failure", "ErrorDescription":
                  ["XENAPI_PLUGIN_FAILURE", methodname, e.__class__.__name__, str(e)]})
