#!/usr/bin/env python3
"""Skein's sample plugin: a small ticket tracker.

It speaks JSON-RPC 2.0 with the node, one JSON object per line on standard
input and output (see `skein_node::plugins` for the protocol), and keeps
its tickets in tickets.json in the data folder the node gives it
(SKEIN_PLUGIN_DATA), written whole and renamed into place.

    /ticket open TEXT   open a ticket and post its card into the conversation
    /ticket open        the same, from the last message someone sent you here
    /ticket list        the open tickets (shown to you alone)
    /ticket show N      one ticket
    /ticket close N     close it, and say so in the conversation

The message action "Create ticket from this message" opens a ticket from
the message it is used on. Only the standard library is used.
"""

import json
import os
import sys
import time

DATA = os.environ.get("SKEIN_PLUGIN_DATA", ".")
STORE = os.path.join(DATA, "tickets.json")
_next_id = 0
_backlog = []
_granted = set()  # what the user granted at install, from `initialize`

# The protocol is UTF-8 whatever the locale says.
sys.stdin.reconfigure(encoding="utf-8")
sys.stdout.reconfigure(encoding="utf-8")


def load():
    try:
        with open(STORE, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {"next": 1, "tickets": []}


def save(db):
    tmp = "%s.%d.tmp" % (STORE, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(db, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, STORE)


def write(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def ask(method, params):
    """A request to the node; the answer is read before anything else."""
    global _next_id
    _next_id += 1
    my_id = "t%d" % _next_id
    write({"jsonrpc": "2.0", "id": my_id, "method": method, "params": params})
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        if msg.get("id") == my_id and "method" not in msg:
            if "error" in msg:
                raise RuntimeError(msg["error"]["message"])
            return msg["result"]
        _backlog.append(msg)  # a request that came meanwhile: answered next
    raise SystemExit(0)


class UsageError(Exception):
    pass


def card(t, verb):
    return {
        "title": "Ticket #%d %s: %s" % (t["id"], verb, t["title"][:150]),
        "fields": [
            {"name": "Status", "value": t["status"]},
            {"name": "Opened by", "value": t["opened_by"]},
        ],
    }


def open_ticket(title, user, conversation):
    title = " ".join(title.split())
    if not title:
        raise UsageError("a ticket needs a title: /ticket open TEXT")
    db = load()
    t = {
        "id": db["next"], "title": title, "status": "open", "opened_by": user,
        "conversation": conversation, "opened_at": int(time.time()),
    }
    db["next"] += 1
    db["tickets"].append(t)
    save(db)
    return with_post({"reply": "Opened ticket #%d: %s" % (t["id"], title)}, card(t, "opened"))


def with_post(answer, a_card):
    """The answer, with the card to post when the user granted `post`."""
    if "post" in _granted:
        answer["post"] = {"card": a_card}
    return answer


def find(db, arg):
    try:
        n = int(arg.lstrip("#"))
    except ValueError:
        raise UsageError("%r is not a ticket number" % arg)
    for t in db["tickets"]:
        if t["id"] == n:
            return t
    raise UsageError("there is no ticket #%d" % n)


def command(p):
    words = p.get("args", "").split(None, 1)
    verb, rest = (words[0], words[1] if len(words) > 1 else "") if words else ("list", "")
    if verb == "open":
        if not rest.strip():
            read = ask("conversation.read", {"invocation": p["invocation"], "limit": 20})
            earlier = [m for m in read["messages"] if not m["outgoing"]]
            if not earlier:
                raise UsageError("a ticket needs a title: /ticket open TEXT")
            rest = earlier[-1]["text"]
        return open_ticket(rest, p["user"], p["conversation"])
    db = load()
    if verb == "list":
        open_ones = [t for t in db["tickets"] if t["status"] == "open"]
        if not open_ones:
            return {"reply": "No open tickets."}
        return {"reply": "\n".join("#%d %s (%s)" % (t["id"], t["title"], t["opened_by"]) for t in open_ones)}
    if verb == "show":
        t = find(db, rest.strip())
        return {"reply": "#%d %s: %s (opened by %s)" % (t["id"], t["status"], t["title"], t["opened_by"])}
    if verb == "close":
        t = find(db, rest.strip())
        if t["status"] == "closed":
            return {"reply": "Ticket #%d is already closed." % t["id"]}
        t["status"] = "closed"
        save(db)
        answer = {"reply": "Closed ticket #%d." % t["id"]}
        # Said where it was opened only: its title stays in that conversation.
        if t.get("conversation") == p["conversation"]:
            return with_post(answer, card(t, "closed"))
        return answer
    raise UsageError("unknown: /ticket %s; try open TEXT, list, show N or close N" % verb)


def action(p):
    if p["action"] != "create-ticket":
        raise UsageError("no action %r" % p["action"])
    m = p["message"]
    return open_ticket(m["text"], p["user"], p["conversation"])


def requests():
    while True:
        while _backlog:
            yield _backlog.pop(0)
        line = sys.stdin.readline()
        if not line:
            return
        if line.strip():
            yield json.loads(line)


def main():
    for msg in requests():
        method, rid = msg.get("method"), msg.get("id")
        if rid is None or method is None:
            continue  # a notification, or a stray answer
        try:
            if method == "initialize":
                _granted.update(msg.get("params", {}).get("granted", []))
                result = {"name": "ticket"}
            elif method == "command":
                result = command(msg["params"])
            elif method == "action":
                result = action(msg["params"])
            else:
                write({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no method %s" % method}})
                continue
            write({"jsonrpc": "2.0", "id": rid, "result": result})
        except (UsageError, RuntimeError) as e:
            write({"jsonrpc": "2.0", "id": rid, "error": {"code": 1, "message": str(e)}})
        except Exception as e:  # a damaged tickets.json, say: answer, do not crash
            sys.stderr.write("ticket: %r\n" % e)
            write({"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": "the ticket plugin failed: %s" % e}})


if __name__ == "__main__":
    main()
