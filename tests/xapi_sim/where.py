"""xapi's query language for `<class>.get_all_records_where(expr)` (xen-api's db_filter):
`field "name" = "value"`, `and`, `or`, `not`, `true`, `false` and parentheses. Values are
compared as the database stores them (text); a namespaced field is written `name__label`
for `name_label`'s source, and the simulator's records use the API's names, so both are
accepted. There is no escaping: a value cannot hold a double quote."""

import re

TOKEN = re.compile(r'\s*(?:(\()|(\))|(=)|"([^"]*)"|(field|and|or|not|true|false)\b)')


class BadExpression(Exception):
    pass


def tokens(text):
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise BadExpression("cannot read %r at %d" % (text, pos))
        open_, close, eq, string, word = m.groups()
        out.append(("(" if open_ else ")" if close else "=" if eq else
                    ("str", string) if string is not None else word))
        pos = m.end()
    return out


def parse(text):
    """A predicate over records for `text`."""
    toks = tokens(text)
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else None

    def take(expected=None):
        t = peek()
        if t is None or (expected is not None and t != expected):
            raise BadExpression("expected %r in %r" % (expected, text))
        pos[0] += 1
        return t

    def primary():
        t = peek()
        if t == "(":
            take("(")
            e = disjunction()
            take(")")
            return e
        if t == "not":
            take()
            inner = primary()
            return lambda r: not inner(r)
        if t in ("true", "false"):
            take()
            return lambda r, v=(t == "true"): v
        if t == "field":
            take()
            name = take()
            if not isinstance(name, tuple):
                raise BadExpression("a field name must be quoted in %r" % text)
            take("=")
            value = take()
            if not isinstance(value, tuple):
                raise BadExpression("a value must be quoted in %r" % text)
            key, want = name[1].replace("__", "_"), value[1]
            return lambda r: str_of(r.get(key)) == want
        raise BadExpression("unexpected %r in %r" % (t, text))

    def conjunction():
        e = primary()
        while peek() == "and":
            take()
            left, right = e, primary()
            e = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return e

    def disjunction():
        e = conjunction()
        while peek() == "or":
            take()
            left, right = e, conjunction()
            e = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return e

    result = disjunction()
    if peek() is not None:
        raise BadExpression("trailing %r in %r" % (peek(), text))
    return result


def str_of(v):
    """A record value as the database stores it (booleans lower case)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)
