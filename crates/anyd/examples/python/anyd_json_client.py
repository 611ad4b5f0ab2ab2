#!/usr/bin/env python3
"""A client for any anyd daemon, built from its contract document.

Python with the standard library only: it speaks the protocol's JSON
codec over a Unix socket (docs/PROTOCOL.md: 4-byte big-endian length,
then a JSON payload; section 8.1 for streams, 8.2 for descriptors), reads
the daemon's contract from the reserved endpoint `anyd.describe`
(section 5.1) and knows every endpoint from it alone: its parameters and
their JSON Schemas (arguments are checked before they are sent), whether
it streams, whether it passes descriptors. Nothing in here knows any
particular daemon.

    anyd_json_client.py ADDRESS describe
    anyd_json_client.py ADDRESS call ENDPOINT [JSON_ARG ...] [NAME=JSON_ARG ...]
    anyd_json_client.py ADDRESS exercise

ADDRESS is unix:/path/to.sock, /path/to.sock or unix:@abstract-name.
`call` prints the result (or each item of a stream) as JSON; an argument
that does not parse as JSON is a string. `exercise` calls every endpoint
with arguments made up from the schemas, streams included: it opens each
stream on a connection of its own, calls the other endpoints (again, until
an item came on every stream, so that each is known to be subscribed, then
once more), shows the items of that last round, and cancels the streams.

As a library: Client(address).call("status"), .stream("watch"),
.contract["methods"].
"""

import json
import os
import select
import socket
import struct
import sys

MAX_FDS = 16


class RemoteError(Exception):
    """An error reply: kind (the daemon's word), message, data."""

    def __init__(self, kind, message, data=None):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.data = kind, message, data


class Fd:
    """A file descriptor in an argument or a result ({"$fd": n} on the wire)."""

    def __init__(self, fd):
        self.fd = fd

    def read_all(self):
        os.lseek(self.fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self.fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self):
        os.close(self.fd)

    def __repr__(self):
        return f"Fd({self.fd})"


class Connection:
    """One session: frames out, frames (and their descriptors) in."""

    def __init__(self, address):
        if address.startswith("unix:"):
            address = address[len("unix:"):]
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(address)
        self.buffer = b""
        self.fds = []

    def send(self, message, fds=()):
        payload = json.dumps(message, separators=(",", ":")).encode()
        frame = struct.pack(">i", len(payload)) + payload
        if fds:
            socket.send_fds(self.sock, [frame], [f.fd for f in fds])
        else:
            self.sock.sendall(frame)

    def _fill(self, timeout):
        """Reads what is there; False when nothing came within timeout."""
        if timeout is not None:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return False
        flags = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
        data, fds, _, _ = socket.recv_fds(self.sock, 65536, MAX_FDS, flags)
        if not data:
            raise EOFError("the daemon closed the connection")
        self.buffer += data
        # The descriptors of a read belong to the frame that holds its
        # last byte (docs/PROTOCOL.md section 8.2): frames are read in
        # order, so keeping them in order of arrival is enough here.
        self.fds.extend(fds)
        return True

    def recv(self, timeout=None):
        """The next frame, decoded, with its descriptors; None on timeout."""
        while len(self.buffer) < 4 or len(self.buffer) < 4 + struct.unpack(">i", self.buffer[:4])[0]:
            if not self._fill(timeout):
                return None
        (n,) = struct.unpack(">i", self.buffer[:4])
        payload, self.buffer = self.buffer[4:4 + n], self.buffer[4 + n:]
        fds, self.fds = self.fds, []
        return json.loads(payload), [Fd(fd) for fd in fds]

    def close(self):
        try:
            self.send("SIGENDS")
            self.recv(timeout=1)
        except OSError:
            pass
        self.sock.close()


def with_fds(value, fds):
    """Replaces each {"$fd": n} placeholder with the descriptor it names."""
    if isinstance(value, dict):
        if set(value) == {"$fd"} and isinstance(value["$fd"], int) and value["$fd"] < len(fds):
            return fds[value["$fd"]]
        return {k: with_fds(v, fds) for k, v in value.items()}
    if isinstance(value, list):
        return [with_fds(v, fds) for v in value]
    return value


def placeholders(value, out):
    """Replaces each Fd with a placeholder, collecting the descriptors."""
    if isinstance(value, Fd):
        out.append(value)
        return {"$fd": len(out) - 1}
    if isinstance(value, dict):
        return {k: placeholders(v, out) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [placeholders(v, out) for v in value]
    return value


def answer(reply, fds):
    if "error" in reply:
        e = reply["error"]
        raise RemoteError(e.get("kind"), e.get("message"), e.get("data"))
    return with_fds(reply.get("ok"), fds)


class Schemas:
    """Checks values against the JSON Schemas of a contract document (the
    part schemars writes), and makes up values they allow."""

    TYPES = {"null": type(None), "boolean": bool, "string": str, "array": (list, tuple),
             "object": (dict, Fd)}

    def __init__(self, contract):
        self.shared = contract.get("components", {}).get("schemas", {})

    def resolve(self, schema):
        while isinstance(schema, dict) and "$ref" in schema:
            schema = self.shared[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def check(self, schema, value, path=""):
        """None if value fits, else why not."""
        schema = self.resolve(schema)
        if schema is True or schema == {} or not isinstance(schema, dict):
            return None
        at = f"at {path}: " if path else ""
        if "x-anyd-fd" in schema:
            return None if isinstance(value, Fd) else f"{at}expected a descriptor (Fd)"
        types = schema.get("type")
        if types is not None:
            types = [types] if isinstance(types, str) else types
            if not any(self.has_type(value, t) for t in types):
                return f"{at}expected {' or '.join(types)}, got {json.dumps(value)}"
        if "enum" in schema and value not in schema["enum"]:
            return f"{at}expected one of {schema['enum']}, got {json.dumps(value)}"
        if "const" in schema and value != schema["const"]:
            return f"{at}expected {json.dumps(schema['const'])}, got {json.dumps(value)}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                return f"{at}{value} is below {schema['minimum']}"
            if "maximum" in schema and value > schema["maximum"]:
                return f"{at}{value} is above {schema['maximum']}"
        if isinstance(value, dict):
            for name in schema.get("required", []):
                if name not in value:
                    return f"{at}missing field '{name}'"
            props = schema.get("properties", {})
            for k, v in value.items():
                sub = props.get(k, schema.get("additionalProperties", True))
                why = self.check(sub, v, f"{path}.{k}")
                if why:
                    return why
        if isinstance(value, (list, tuple)) and "items" in schema:
            for i, v in enumerate(value):
                why = self.check(schema["items"], v, f"{path}[{i}]")
                if why:
                    return why
        for key in ("anyOf", "oneOf"):
            if key in schema:
                whys = [self.check(s, value, path) for s in schema[key]]
                if all(whys):
                    return whys[0]
        return None

    @staticmethod
    def has_type(value, t):
        if t == "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        if t == "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, Schemas.TYPES.get(t, object))

    def example(self, schema):
        """A value the schema allows, made up."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or schema == {}:
            return None
        if "x-anyd-fd" in schema:
            return Fd(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        for key in ("oneOf", "anyOf"):
            if key in schema:
                branches = [b for b in schema[key] if self.resolve(b).get("type") != "null"]
                return self.example((branches or schema[key])[0])
        types = schema.get("type", "null")
        t = [x for x in ([types] if isinstance(types, str) else types) if x != "null"]
        t = t[0] if t else "null"
        if t == "string":
            return "example"
        if t in ("integer", "number"):
            return max(schema.get("minimum", 0), 0)
        if t == "boolean":
            return False
        if t == "array":
            return []
        if t == "object":
            props = schema.get("properties", {})
            return {k: self.example(props[k]) for k in schema.get("required", []) if k in props}
        return None


class Client:
    """A daemon's endpoints, as its contract document says."""

    def __init__(self, address):
        self.address = address
        self.conn = Connection(address)
        self.conn.send(["anyd.describe", [], {}])
        self.contract = answer(*self.conn.recv())
        self.schemas = Schemas(self.contract)
        self.methods = {m["name"]: m for m in self.contract["methods"]}

    def method(self, name):
        if name not in self.methods:
            raise AttributeError(f"{self.address} has no endpoint {name!r} that you may call")
        return self.methods[name]

    def request(self, name, args, kwargs, stream):
        """The request frame for a call, after checking its arguments."""
        m = self.method(name)
        params = m["params"]
        if len(args) > len(params):
            raise TypeError(f"{name}() takes {len(params)} positional arguments, {len(args)} given")
        for i, p in enumerate(params):
            given = i < len(args) or p["name"] in kwargs
            if not given:
                if p["required"]:
                    raise TypeError(f"{name}(): parameter '{p['name']}': missing")
                continue
            value = args[i] if i < len(args) else kwargs[p["name"]]
            why = self.schemas.check(p["schema"], value)
            if why:
                raise TypeError(f"{name}(): parameter '{p['name']}': {why}")
        for k in kwargs:
            if not any(p["name"] == k for p in params):
                raise TypeError(f"{name}() has no parameter '{k}'")
        fds = []
        args, kwargs = placeholders(list(args), fds), placeholders(dict(kwargs), fds)
        options = {}
        if stream:
            options["stream"] = True
        if fds or any(p.get("fds") for p in params) or m["result"].get("fds"):
            options["fds"] = True
        message = [name, args, kwargs, options] if options else [name, args, kwargs]
        return message, fds

    def call(self, name, *args, **kwargs):
        """Calls an endpoint for its one result."""
        if self.method(name).get("stream"):
            raise TypeError(f"{name}() streams: use stream()")
        message, fds = self.request(name, args, kwargs, False)
        self.conn.send(message, fds)
        return answer(*self.conn.recv())

    def stream(self, name, *args, **kwargs):
        """Calls a streaming endpoint, on a connection of its own."""
        if not self.method(name).get("stream"):
            raise TypeError(f"{name}() does not stream: use call()")
        message, fds = self.request(name, args, kwargs, True)
        return Stream(Connection(self.address), message, fds)

    def close(self):
        self.conn.close()


class Stream:
    """A stream's items, as they come; cancel() stops it."""

    def __init__(self, conn, message, fds):
        self.conn, self.ended = conn, False
        conn.send(message, fds)

    def next(self, timeout=None):
        """The next item; None at the end, or on timeout (then ended is
        False). An error reply ends the stream and is raised."""
        if self.ended:
            return None
        frame = self.conn.recv(timeout)
        if frame is None:
            return None
        reply, fds = frame
        if "item" in reply:
            return with_fds(reply["item"], fds)
        self.ended = True
        answer(reply, fds)
        return None

    def cancel(self):
        """Stops the stream: CANCEL, then the frames up to its end."""
        if not self.ended:
            self.conn.send("CANCEL")
            try:
                while self.next(timeout=10) is not None or not self.ended:
                    pass
            except RemoteError as e:
                if e.kind != "Cancelled":
                    raise
        self.conn.close()


def shown(value):
    if isinstance(value, Fd):
        data = value.read_all()
        value.close()
        return f"<descriptor: {len(data)} bytes: {data.decode(errors='replace')!r}>"
    return json.dumps(value, default=repr)


def short(schema):
    if not isinstance(schema, dict):
        return "any"
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "x-anyd-fd" in schema:
        return "Fd"
    types = schema.get("type", "any")
    return " | ".join(types) if isinstance(types, list) else types


def describe(client):
    info = client.contract["info"]
    print(f"{info['title']} {info['version']}")
    for m in client.contract["methods"]:
        params = ", ".join(f"{p['name']}{'' if p['required'] else '?'}: {short(p['schema'])}"
                           for p in m["params"])
        result = short(m["result"]["schema"])
        print(f"{m['name']}({params}) -> {'stream of ' if m.get('stream') else ''}{result}")


def exercise(client):
    """Calls every endpoint with made-up arguments, streams included."""
    made_up = {}
    for m in client.contract["methods"]:
        made_up[m["name"]] = [client.schemas.example(p["schema"]) for p in m["params"] if p["required"]]
    streams = {}
    for m in client.contract["methods"]:
        if m.get("stream"):
            streams[m["name"]] = client.stream(m["name"], *made_up[m["name"]])
    # A stream is known to be subscribed once an item came on it; the
    # items shown are those of the first round of calls made after that
    # for every stream (the daemon may subscribe a stream opened just
    # before the first round after some of its calls).
    subscribed = set()
    for attempt in range(6):
        got = {name: [] for name in streams}
        ready = subscribed == set(streams)
        for m in client.contract["methods"]:
            if m.get("stream"):
                continue
            args = made_up[m["name"]]
            call = f"{m['name']}({', '.join(shown(a) if not isinstance(a, Fd) else 'Fd' for a in args)})"
            try:
                result = client.call(m["name"], *args)
                if attempt == 0:
                    print(f"{call} -> {shown(result)}")
            except RemoteError as e:
                if attempt == 0:
                    print(f"{call} ! {e.kind}: {e.message}")
        # What the streams sent meanwhile.
        for name, s in streams.items():
            while (item := s.next(timeout=0.5)) is not None:
                got[name].append(item)
        if ready:
            break
        subscribed |= {name for name, items in got.items() if items}
    for name, s in streams.items():
        for item in got[name]:
            print(f"{name}() -> item {shown(item)}")
        s.cancel()
        print(f"{name}() -> cancelled")


def main(argv):
    if len(argv) < 2 or argv[1] not in ("describe", "call", "exercise"):
        print(__doc__.strip().split("\n\n")[2], file=sys.stderr)
        return 2
    try:
        client = Client(argv[0])
    except RemoteError as e:
        print(f"{argv[0]} has no contract: {e}", file=sys.stderr)
        return 1
    try:
        if argv[1] == "describe":
            describe(client)
        elif argv[1] == "exercise":
            exercise(client)
        else:
            name, args, kwargs = argv[2], [], {}
            for text in argv[3:]:
                key, eq, rest = text.partition("=")
                target = rest if eq and key.isidentifier() else text
                try:
                    value = json.loads(target)
                except ValueError:
                    value = target
                if eq and key.isidentifier():
                    kwargs[key] = value
                else:
                    args.append(value)
            if client.method(name).get("stream"):
                s = client.stream(name, *args, **kwargs)
                while (item := s.next()) is not None:
                    print(shown(item), flush=True)
            else:
                print(shown(client.call(name, *args, **kwargs)))
    except (TypeError, AttributeError) as e:
        print(f"anyd_json_client: {e}", file=sys.stderr)
        return 2
    except RemoteError as e:
        print(f"{e.kind}: {e.message}", file=sys.stderr)
        return 5
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
