"""Every chapter's solution passes its self-checks, and every check fails the plausible wrong
answers, at that exercise.

The notebook-level twin of mutation testing: a chapter's solution runs once in one kernel, and
every check must pass; then, for each known-wrong answer, its exercise cell is run with the
wrong code and the check right after it must fail (CheckFailed, with at least one ❌ line) and
name the mistake (SAYS), and the solution is put back before the next one. Demo cells are not
run again, so a wrong answer costs only its check. (The attendee copies, whose checks must all
fail, run in tests/test_notebooks.py.)
"""

import json
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from accord_app.lab import attendee

pytestmark = pytest.mark.notebooks

CELL_TIMEOUT = 180

# Right answers, to combine with a wrong one where an exercise cell holds several functions.
CEILING = "def actor_ceiling(cost_ms):\n    return 1000 / cost_ms\n"
INSIDE = "def messages_inside(rate_per_s, latency_ms):\n    return rate_per_s * latency_ms / 1000\n"
ROUTE = """import re
def route_key(mode, path):
    found = re.match(r"^/api/servers/([^/]+)/channels/([^/]+)/", path)
    if found:
        return shard_key(mode, found[1], found[2])
    found = re.match(r"^/api/servers/([^/]+)/activity$", path)
    return shard_key(mode, found[1]) if found and mode != "channel" else None
"""
KEPT = (
    "    return max([s.offered for s in steps if s.ack.p99_ms <= p99_limit_ms"
    " and s.failures == 0 and s.acked >= 0.95 * s.sent and s.sent >= 0.85 * s.offered],"
    " default=0.0)\n"
)
PICK = """def pick_worker(key, addresses):
    scores = [xxhash.xxh64_intdigest((a + key).encode()) for a in addresses]
    return scores.index(max(scores)) + 1
"""

WHERE = """def where_it_lives():
    return {"servers": "catalog", "channels": "catalog", "messages": "actor",
            "name_check": "worker", "last_seq": "actor"}
"""
TRIP = "FIBRE_KM_PER_S = 200_000\ndef round_trip_ms(distance_km):\n    return {}\n"
# 1.2's check asks the server that 1.1's check started: a wrong greet() gets an app (and the
# server) of its own, or the right route, still on the old app, would answer for it.
GREET = """api = FastAPI()
@api.get("/api")
def api_root():
    return {{"api": True}}
@api.get("/api/greet/{{name}}")
def greet(name: str, {}):
    greeting = f"Hello, {{name}}!"
    return {{"greeting": {}}}
api_server = serve(api, name="api")
"""
COUNTER = """def create_counter_db():
    db_path = Path(tempfile.mkdtemp(prefix="accord-01-")) / "counter.sqlite3"
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE counter (value INTEGER NOT NULL)")
        conn.execute("INSERT INTO counter (value) VALUES (0)")
    return db_path
def make_shared_counter_app(db_path):
    app = FastAPI()
    @app.post("/visit")
    def visit():
{}
    return app
"""
READ_THEN_WRITE = """        conn = sqlite3.connect(db_path)
        (value,) = conn.execute("SELECT value FROM counter").fetchone()
        value += 1
        conn.execute("UPDATE counter SET value = ?", (value,))
        conn.commit()
        conn.close()
        return {"visits": value}"""
NO_COMMIT = """        conn = sqlite3.connect(db_path)
        query = "UPDATE counter SET value = value + 1 RETURNING value"
        (value,) = conn.execute(query).fetchone()
        conn.close()
        return {"visits": value}"""


def solution_cell(chapter: str, tag: str) -> str:
    cells = json.loads((attendee.SOLUTIONS_DIR / chapter).read_text(encoding="utf-8"))["cells"]
    [cell] = [cell for cell in cells if tag in cell.get("metadata", {}).get("tags", [])]
    return "".join(cell["source"])


def swap(source: str, old: str, new: str) -> str:
    assert source.count(old) == 1, f"{old!r} is not once in the solution"
    return source.replace(old, new)


SERVER_ROUTES = solution_cell("02-catalog-database.ipynb", "exercise-2.2")
# 2.3 adds to 2.2's router, which holds the right routes already: a wrong 2.3 starts a new one.
CHANNEL_ROUTES = SERVER_ROUTES + solution_cell("02-catalog-database.ipynb", "exercise-2.3")
ACTOR = solution_cell("03-actor-model.ipynb", "exercise-3.1")
SEQ = solution_cell("03-actor-model.ipynb", "exercise-3.2")
REGISTRY = solution_cell("03-actor-model.ipynb", "exercise-3.3")
LOOP_BODY = """            message, reply = await self.mailbox.get()
            try:
                result = await self.receive(message)
            except Exception as error:
                reply.set_exception(error)
            else:
                reply.set_result(result)
"""
TASK_PER_MESSAGE = """            message, reply = await self.mailbox.get()

            async def turn(message=message, reply=reply):
                try:
                    reply.set_result(await self.receive(message))
                except Exception as error:
                    reply.set_exception(error)

            asyncio.get_running_loop().create_task(turn())
"""
COUNTER_ACTOR = solution_cell("04-durable-actors.ipynb", "exercise-4.1")
JOURNAL = solution_cell("04-durable-actors.ipynb", "exercise-4.2")
REMINDER = solution_cell("04-durable-actors.ipynb", "exercise-4.3")
COUNT_BODY = """        count = (self.storage.get("count") or 0) + by
        self.storage.put("count", count)
        if count > self.LIMIT:
            raise ValueError(f"the count would be {count}, above {self.LIMIT}")
        return count
"""
CACHED_COUNT = """        if not hasattr(self, "count"):
            self.count = self.storage.get("count") or 0
        self.count += by
        self.storage.put("count", self.count)
        if self.count > self.LIMIT:
            raise ValueError("above the limit")
        return self.count
"""
CHECK_FIRST = """        count = (self.storage.get("count") or 0) + by
        if count > self.LIMIT:
            raise ValueError(f"the count would be {count}, above {self.LIMIT}")
        self.storage.put("count", count)
        return count
"""
NEXT_NUMBER_SQL = (
    'rows = self.storage.sql.execute("SELECT coalesce(max(number), 0) + 1 FROM entries")\n'
    "        number = rows[0][0]"
)
NEXT_NUMBER_IN_MEMORY = """self.next_number = getattr(self, "next_number", 0) + 1
        number = self.next_number"""
ALARM_BODY = """        pending = self.storage.get("pending")
        if pending is not None:
            self.storage.put("delivered", [*(self.storage.get("delivered") or []), pending])
            self.storage.delete("pending")
"""
NO_GUARD = """        pending = self.storage.get("pending")
        self.storage.put("delivered", [*(self.storage.get("delivered") or []), pending])
"""
SERVERS = """def insert_server(conn, name):
    server = Server(id=str(uuid.uuid4()), name=name)
    with write_transaction(conn):
        conn.execute("INSERT INTO servers (id, name) VALUES (?, ?)", (server.id, server.name))
    return server
def select_servers(conn):
    rows = conn.execute("SELECT id, name FROM servers ORDER BY rowid").fetchall()
    return [Server(id=i, name=n) for i, n in rows]
"""

CHANNEL = solution_cell("05-channel-actor.ipynb", "exercise-5.1")
HISTORY = solution_cell("05-channel-actor.ipynb", "exercise-5.2")
REPLAY = solution_cell("05-channel-actor.ipynb", "exercise-5.3")
NEXT_SEQ = """        rows = self.storage.sql.execute(
            "SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE channel_id = ?", channel_id
        )
"""
NEXT_SEQ_IN_MEMORY = """        self.seqs = getattr(self, "seqs", {})
        self.seqs[channel_id] = self.seqs.get(channel_id, 0) + 1
        rows = [[self.seqs[channel_id]]]
"""
INSERT = CHANNEL[CHANNEL.index('        self.storage.sql.execute(\n            "INSERT') :]
INSERT = INSERT[: INSERT.index('        ws.send(encode({"type": "ack"')]
REPLAY_LOOP = """    for row in rows:
        ws.send(encode({"type": "message", **as_message(row)}))
"""
PRESENT = solution_cell("06-putting-it-together.ipynb", "exercise-6.1")
NEW_LIST = '{"type": "presence", "members": self.members(channel_id)}'
PRESENCE = f"        self.broadcast(channel_id, {NEW_LIST})\n"

DARK = solution_cell("08-beyond-one-machine.ipynb", "exercise-8.1")
CALL = solution_cell("08-beyond-one-machine.ipynb", "exercise-8.2")
FANOUT = solution_cell("08-beyond-one-machine.ipynb", "exercise-8.3")
ANNOUNCE = solution_cell("08-beyond-one-machine.ipynb", "exercise-8.4")
STATUS_CHECK = """    if response.status_code != 200:
        raise CallFailed(path, response.json().get("code", str(response.status_code)))
"""
ERROR_CODE = 'response.json().get("code", str(response.status_code))'
DEADLINE = """        async with asyncio.timeout(deadline_s):
            response = await client.get(path)
    except TimeoutError:
"""
PER_STEP = """        response = await client.get(path, timeout=deadline_s)
    except httpx.TimeoutException:
"""
NO_DEADLINE = """        response = await client.get(path)
    except TimeoutError:
"""
UNREACHABLE = """    except httpx.TransportError as error:
        raise CallFailed(path, type(error).__name__) from None
"""
KEY_HEADER = 'headers={"Idempotency-Key": key}'
ONE_KEY = "    key = str(uuid.uuid4())  # one for the whole announcement: every repeat carries it\n"
TRY = """                async with asyncio.timeout(deadline_s):
                    response = await client.post(
                        path, json={"message": text}, headers={"Idempotency-Key": key}
                    )
            except TimeoutError:
"""
PER_STEP_TRY = """                response = await client.post(
                    path, json={"message": text}, headers={"Idempotency-Key": key},
                    timeout=deadline_s,
                )
            except httpx.TimeoutException:
"""

QUORUM = solution_cell("09-replication.ipynb", "exercise-9.1")
APPEND = solution_cell("09-replication.ipynb", "exercise-9.2")
STORE = solution_cell("09-replication.ipynb", "exercise-9.3")
UNDO = solution_cell("09-replication.ipynb", "exercise-9.4")
FOR_TIME = "bookmark = await room.bookmark_for_time(flood_at)"
AS_NUMBERS = """    marks = [await room.bookmark_for_time(flood_at), await room.bookmark()]
    bookmark = str(min(int(mark) for mark in marks))
"""
EXPECTED = 'headers={"Nats-Expected-Last-Subject-Sequence": str(owner.applied)}'
REPEAT = """    if message_id in owner.messages:  # a repeat of a message already in the log
        return owner.messages[message_id]
"""
IN_MEMORY = """seen = {}  # ids stored by this process


async def store(js, owner: Owner, message_id: str, text: str) -> int:
    if message_id in seen:
        return seen[message_id]
    entry = {"kind": "message", "epoch": owner.epoch, "id": message_id, "text": text}
    seq = await append(js, owner, entry)
    owner.apply(seq, entry)
    seen[message_id] = seq
    return seq
"""

# chapter -> exercise tag -> [(the mistake, a whole wrong exercise cell)]
WRONG_ANSWERS: dict[str, dict[str, list[tuple[str, str]]]] = {
    "00-what-we-build.ipynb": {
        "exercise-0.1": [
            (
                "messages in the catalog",
                WHERE.replace('"messages": "actor"', '"messages": "catalog"'),
            ),
            (
                "the counter in the shared database",
                WHERE.replace('"last_seq": "actor"', '"last_seq": "catalog"'),
            ),
        ],
        "exercise-0.2": [
            ("one way only", TRIP.format("distance_km / FIBRE_KM_PER_S * 1000")),
            ("the speed in vacuum", TRIP.format("2 * distance_km / 300_000 * 1000")),
            ("seconds", TRIP.format("2 * distance_km / FIBRE_KM_PER_S")),
            ("whole milliseconds", TRIP.format("round(2 * distance_km / FIBRE_KM_PER_S * 1000)")),
        ],
    },
    "01-stateless-compute.ipynb": {
        "exercise-1.1": [
            (
                "1 instead of true",
                'api = FastAPI()\n@api.get("/api")\ndef api_root():\n    return {"api": 1}\n',
            ),
            (
                "a string",
                'api = FastAPI()\n@api.get("/api")\ndef api_root():\n    return {"api": "true"}\n',
            ),
        ],
        "exercise-1.2": [
            (
                "any shout= shouts, even false",
                GREET.format(
                    "shout: str | None = None",
                    "greeting.upper() if shout is not None else greeting",
                ),
            ),
            (
                "shout as a string",
                GREET.format(
                    'shout: str = "false"', 'greeting.upper() if shout == "true" else greeting'
                ),
            ),
            ("never shouts", GREET.format("shout: bool = False", "greeting")),
        ],
        "exercise-1.3": [
            ("read, then write", COUNTER.format(READ_THEN_WRITE)),
            (
                "a deferred transaction that reads first",
                COUNTER.format(
                    READ_THEN_WRITE.replace(
                        "sqlite3.connect(db_path)", "sqlite3.connect(db_path, isolation_level=None)"
                    )
                    .replace("        (value,)", '        conn.execute("BEGIN")\n        (value,)')
                    .replace("conn.commit()", 'conn.execute("COMMIT")')
                ),
            ),
            (
                "a count in the kernel's memory",
                COUNTER.replace(
                    "    app = FastAPI()", "    app = FastAPI()\n    seen = [0]"
                ).format('        seen[0] += 1\n        return {"visits": seen[0]}'),
            ),
            ("no commit", COUNTER.format(NO_COMMIT)),
        ],
    },
    "02-catalog-database.ipynb": {
        "exercise-2.1": [
            ("no ORDER BY", SERVERS.replace(" ORDER BY rowid", "")),
            (
                "no write transaction",
                SERVERS.replace("    with write_transaction(conn):\n    ", ""),
            ),
            ("`with conn:`", SERVERS.replace("with write_transaction(conn):", "with conn:")),
            (
                "rows, not Servers",
                SERVERS.replace("[Server(id=i, name=n) for i, n in rows]", "rows"),
            ),
        ],
        "exercise-2.2": [
            ("no 201", swap(SERVER_ROUTES, "status_code=201", "status_code=200")),
            (
                "a list that ignores the catalog",
                swap(SERVER_ROUTES, "        return select_servers(conn)", "        return []"),
            ),
        ],
        "exercise-2.3": [
            ("server_id as text", CHANNEL_ROUTES.replace("server_id: uuid.UUID", "server_id: str")),
            (
                "no 404 for an unknown server",
                swap(
                    CHANNEL_ROUTES,
                    "    if channel is None:\n        raise",
                    "    if False:\n        raise",
                ),
            ),
        ],
    },
    "03-actor-model.ipynb": {
        "exercise-3.1": [
            ("a task per message", swap(ACTOR, LOOP_BODY, TASK_PER_MESSAGE)),
            (
                "receive not awaited",
                swap(ACTOR, "await self.receive(message)", "self.receive(message)"),
            ),
            (
                "the loop stops at the first error",
                swap(
                    ACTOR,
                    "reply.set_exception(error)\n",
                    "reply.set_exception(error)\n                return\n",
                ),
            ),
        ],
        "exercise-3.2": [
            ("off by one", swap(SEQ, "        return self.last_seq\n", "        return current\n")),
            (
                "never stores the new number",
                swap(
                    SEQ,
                    "        self.last_seq = current + 1\n        return self.last_seq",
                    "        return current + 1",
                ),
            ),
            (
                "a counter outside the actor",
                "NEXT = [0]\n"
                + swap(
                    SEQ,
                    "        current = self.last_seq\n        await asyncio"
                    ".sleep(0)\n        self.last_seq = current + 1\n        return self.last_seq",
                    "        NEXT[0] += 1\n        return NEXT[0]",
                ),
            ),
        ],
        "exercise-3.3": [
            (
                "setdefault builds a SeqActor every time",
                swap(
                    REGISTRY,
                    "        if name not in self.channels:\n            self.channels[name]"
                    " = SeqActor()\n        return self.channels[name]",
                    "        return self.channels.setdefault(name, SeqActor())",
                ),
            ),
            (
                "a new actor per ask",
                swap(
                    REGISTRY,
                    "        if name not in self.channels:\n            self.channels[name]"
                    " = SeqActor()\n        return self.channels[name]",
                    "        return SeqActor()",
                ),
            ),
        ],
    },
    "04-durable-actors.ipynb": {
        "exercise-4.1": [
            (
                ">= instead of >",
                swap(COUNTER_ACTOR, "if count > self.LIMIT", "if count >= self.LIMIT"),
            ),
            ("the count cached in an attribute", swap(COUNTER_ACTOR, COUNT_BODY, CACHED_COUNT)),
            ("the limit checked before the put", swap(COUNTER_ACTOR, COUNT_BODY, CHECK_FIRST)),
        ],
        "exercise-4.2": [
            ("entries without ORDER BY", swap(JOURNAL, " ORDER BY number", "")),
            (
                "sqlite3.Row objects",
                swap(JOURNAL, "return [(row[0], row[1]) for row in rows]", "return rows"),
            ),
            (
                "numbering in memory",
                swap(
                    JOURNAL,
                    NEXT_NUMBER_SQL,
                    NEXT_NUMBER_IN_MEMORY,
                ),
            ),
        ],
        "exercise-4.3": [
            ("no delete, no guard", swap(REMINDER, ALARM_BODY, NO_GUARD)),
            (
                "deletes, but no guard",
                swap(REMINDER, ALARM_BODY, NO_GUARD + '        self.storage.delete("pending")\n'),
            ),
            (
                "replaces the list",
                swap(REMINDER, '[*(self.storage.get("delivered") or []), pending]', "[pending]"),
            ),
        ],
    },
    "05-channel-actor.ipynb": {
        "exercise-5.1": [
            (
                "numbers kept in memory, nothing stored",
                swap(swap(CHANNEL, NEXT_SEQ, NEXT_SEQ_IN_MEMORY), INSERT, ""),
            ),
            ("the time in seconds", swap(CHANNEL, "int(time.time() * 1000)", "int(time.time())")),
            (
                "the highest seq of every channel",
                swap(CHANNEL, ' WHERE channel_id = ?", channel_id', '"'),
            ),
            (
                "the sender left out of the broadcast",
                swap(
                    CHANNEL,
                    '        self.broadcast(channel_id, {"type": "message", **message})\n',
                    "        for other in self.ctx.get_websockets(channel_id):\n"
                    "            if other is not ws:\n"
                    '                other.send(encode({"type": "message", **message}))\n',
                ),
            ),
            (
                "a bad frame raises instead of answering",
                swap(
                    CHANNEL,
                    '    try:\n        frame = parse_frame(data if isinstance(data, str) else "")\n'
                    "    except ProtocolError as error:\n        ws.send(encode(error.frame()))\n"
                    "        return\n",
                    '    frame = parse_frame(data if isinstance(data, str) else "")\n',
                ),
            ),
        ],
        "exercise-5.2": [
            ("oldest first", swap(HISTORY, " ORDER BY seq DESC", " ORDER BY seq")),
            (
                "every channel's messages",
                swap(
                    swap(HISTORY, "WHERE channel_id = ? AND seq", "WHERE seq"),
                    "        channel_id,\n",
                    "",
                ),
            ),
            ("up to before, included", swap(HISTORY, "seq < ?", "seq <= ?")),
            ("no limit", swap(swap(HISTORY, " LIMIT ?", ""), "        limit,\n", "")),
        ],
        "exercise-5.3": [
            ("every message twice", swap(REPLAY, REPLAY_LOOP, REPLAY_LOOP + REPLAY_LOOP)),
            ("no ORDER BY", swap(REPLAY, " ORDER BY seq", "")),
            ("from after_seq itself", swap(REPLAY, "seq > ?", "seq >= ?")),
            (
                "every channel's messages",
                swap(
                    swap(REPLAY, "WHERE channel_id = ? AND seq", "WHERE seq"),
                    "        channel_id,\n        after_seq,\n",
                    "        after_seq,\n",
                ),
            ),
            (
                "the last seq of every channel",
                swap(
                    REPLAY,
                    '"SELECT coalesce(max(seq), 0) FROM messages WHERE channel_id = ?", channel_id',
                    '"SELECT coalesce(max(seq), 0) FROM messages"',
                ),
            ),
            (
                "no 'resumed' frame",
                swap(REPLAY, REPLAY.split("\n    last = ")[1].split("    ### END")[0], "0\n"),
            ),
        ],
    },
    "06-putting-it-together.ipynb": {
        "exercise-6.1": [
            (
                "the list sent to the newcomer only",
                swap(
                    PRESENT,
                    ' "username": username})\n' + PRESENCE,
                    ' "username": username})\n'
                    f"        for ws in sockets:\n            ws.send(encode({NEW_LIST}))\n",
                ),
            ),
            (
                "no new list after 'left'",
                swap(
                    PRESENT,
                    "    " + PRESENCE + "        ### END SOLUTION\n\n\nsettings",
                    "        ### END SOLUTION\n\n\nsettings",
                ),
            ),
            (
                "members of every channel",
                swap(
                    PRESENT, "self.ctx.get_websockets(channel_id)})", "self.ctx.get_websockets()})"
                ),
            ),
            (
                "super().join not awaited",
                swap(PRESENT, "await super().join(", "super().join("),
            ),
            (
                "'joined' for every tab",
                swap(
                    PRESENT,
                    "        if len(sockets) == 1:\n            self.broadcast",
                    "        self.broadcast",
                ),
            ),
        ],
        "exercise-6.2": [
            (mistake, f"def predicted_actors(mode, channels):\n{body}")
            for mistake, body in [
                (
                    "the counts for 2 servers x 2 channels",
                    "    return {Sharding.CHANNEL: 4, Sharding.SERVER: 2}.get(mode, 1)",
                ),
                ("one actor per channel in every mode", "    return len(channels)"),
                (
                    "a server-wide actor per channel",
                    "    return 1 if mode is Sharding.GLOBAL else len(channels)",
                ),
                (
                    "one global actor even with no channels",
                    "    if mode is Sharding.CHANNEL:\n        return len(set(channels))\n"
                    "    if mode is Sharding.SERVER:\n"
                    "        return len({s for s, _ in channels})\n"
                    "    return 1",
                ),
            ]
        ],
    },
    "07-scaling.ipynb": {
        "exercise-7.1": [
            ("the cost itself, not a rate", "def actor_ceiling(c):\n    return c\n" + INSIDE),
            (
                "per millisecond, not per second",
                "def actor_ceiling(c):\n    return 1 / c\n" + INSIDE,
            ),
            (
                "the ceiling for 20 ms, whatever the cost",
                "def actor_ceiling(c):\n    return 50.0\n" + INSIDE,
            ),
            (
                "Little's law with milliseconds as seconds",
                CEILING + "def messages_inside(rate, latency):\n    return rate * latency\n",
            ),
            (
                "Little's law upside down",
                CEILING + "def messages_inside(rate, latency):\n    return 1000 * rate / latency\n",
            ),
            ("integer division", "def actor_ceiling(c):\n    return 1000 // c\n" + INSIDE),
        ],
        "exercise-7.2": [
            (
                "the channel's key in every mode",
                ROUTE.replace(
                    "shard_key(mode, found[1], found[2])", 'shard_key("channel", *found.groups())'
                )
                + PICK,
            ),
            (
                "a server-wide path names an actor even under channel sharding",
                ROUTE.replace(' and mode != "channel"', "") + PICK,
            ),
            (
                "an empty channel id for the server-wide path",
                ROUTE.replace("shard_key(mode, found[1])", 'shard_key(mode, found[1], "")').replace(
                    ' and mode != "channel"', ""
                )
                + PICK,
            ),
            (
                "every path names the global actor",
                ROUTE.replace(
                    "    found = re.match",
                    '    if mode == "global":\n        return "global"\n    found = re.match',
                    1,
                )
                + PICK,
            ),
            (
                "the key's hash modulo K",
                ROUTE + "def pick_worker(key, addresses):\n"
                "    return xxhash.xxh64_intdigest(key.encode()) % len(addresses) + 1\n",
            ),
            ("workers numbered from 0", ROUTE + PICK.replace(" + 1", "")),
            ("the lowest score", ROUTE + PICK.replace("max(scores)", "min(scores)")),
            ("key before address", ROUTE + PICK.replace("(a + key)", "(key + a)")),
        ],
        "exercise-7.3": [
            (mistake, f"def sustained(steps, p99_limit_ms):\n{body}")
            for mistake, body in [
                ("the last step's load", "    return steps[-1].offered"),
                ("the most offered, fast or not", "    return max(s.offered for s in steps)"),
                ("failures ignored", KEPT.replace(" and s.failures == 0", "")),
                (
                    "a step exactly at the limit left out",
                    KEPT.replace("<= p99_limit_ms", "< p99_limit_ms"),
                ),
                (
                    "what was acked instead of the offered load",
                    KEPT.replace("[s.offered", "[s.acked"),
                ),
                ("unacked messages ignored", KEPT.replace(" and s.acked >= 0.95 * s.sent", "")),
                (
                    "the generators' shortfall ignored",
                    KEPT.replace(" and s.sent >= 0.85 * s.offered", ""),
                ),
                (
                    "the median instead of the p99",
                    KEPT.replace("s.ack.p99_ms <=", "s.ack.p50_ms <="),
                ),
                (
                    "acks compared with the offered load",
                    KEPT.replace("s.acked >= 0.95 * s.sent", "s.acked >= 0.95 * s.offered"),
                ),
                (
                    "the generators' share read from the acks",
                    KEPT.replace("s.sent >= 0.85 * s.offered", "s.acked >= 0.85 * s.offered"),
                ),
                (
                    "the last good step before the first bad one",
                    "    best = 0.0\n"
                    "    for s in steps:\n"
                    "        if s.ack.p99_ms > p99_limit_ms or s.failures:\n"
                    "            break\n"
                    "        best = s.offered\n"
                    "    return best\n",
                ),
            ]
        ],
        "exercise-7.4": [
            (mistake, f"def actor_calls(mode, n):\n{body}")
            for mistake, body in [
                ("one call per channel in every mode", "    return n"),
                ("one call in every mode", "    return 1"),
                (
                    "one call per channel when global",
                    "    return 1 if mode == 'server' else n",
                ),
                ("the remote calls only", "    return n // 2 if mode == 'channel' else 1"),
            ]
        ],
    },
    "08-beyond-one-machine.ipynb": {
        "exercise-8.1": [
            (
                "hosts numbered from 0",
                swap(DARK, "owner_index(key, addresses) + 1", "owner_index(key, addresses)"),
            ),
            ("the channels that stay up", swap(DARK, "+ 1 == dead", "+ 1 != dead")),
            (
                "the key's hash modulo the host count",
                swap(
                    DARK,
                    "owner_index(key, addresses) + 1 == dead",
                    "int(key.encode().hex(), 16) % len(addresses) + 1 == dead",
                ),
            ),
        ],
        "exercise-8.2": [
            ("unsolved", attendee.strip_solution(CALL, "exercise 8.2")),
            ("get not awaited", swap(CALL, "await client.get(path)", "client.get(path)")),
            ("httpx's timeout per step, not a deadline", swap(CALL, DEADLINE, PER_STEP)),
            ("no deadline", swap(CALL, DEADLINE, NO_DEADLINE)),
            ("an error answer returned as a result", swap(CALL, STATUS_CHECK, "")),
            (
                "httpx's own error instead of CallFailed",
                swap(CALL, STATUS_CHECK, "    response.raise_for_status()\n"),
            ),
            ("no reason given", swap(CALL, ERROR_CODE, '""')),
            ("the status as the reason", swap(CALL, ERROR_CODE, "str(response.status_code)")),
            (
                "an unreachable host not caught",
                swap(CALL, UNREACHABLE, ""),
            ),
            (
                "the error's message as the reason",
                swap(CALL, "(path, type(error).__name__)", "(path, str(error))"),
            ),
        ],
        "exercise-8.3": [
            ("unsolved", attendee.strip_solution(FANOUT, "exercise 8.3")),
            (
                "one call after another",
                swap(
                    FANOUT,
                    "await asyncio.gather(*(one(path) for path in paths))",
                    "[await one(path) for path in paths]",
                ),
            ),
            (
                "answers paired in the order they come back",
                swap(
                    FANOUT,
                    "await asyncio.gather(*(one(path) for path in paths))",
                    "[await a for a in asyncio.as_completed([one(path) for path in paths])]",
                ),
            ),
            (
                "one failure fails the whole fan-out",
                swap(
                    FANOUT,
                    "        except CallFailed as failed:\n            return failed\n",
                    "        finally:\n            pass\n",
                ),
            ),
            (
                "failures left out",
                swap(
                    FANOUT,
                    "dict(zip(paths, answers, strict=True))",
                    "{p: a for p, a in zip(paths, answers, strict=True) if isinstance(a, dict)}",
                ),
            ),
        ],
        "exercise-8.4": [
            ("unsolved", attendee.strip_solution(ANNOUNCE, "exercise 8.4")),
            (
                "a new key for each call",
                swap(ANNOUNCE, KEY_HEADER, 'headers={"Idempotency-Key": str(uuid.uuid4())}'),
            ),
            (
                "a key per channel",
                swap(
                    swap(ANNOUNCE, ONE_KEY, ""),
                    "        for _ in range(2):",
                    "        key = str(uuid.uuid4())\n        for _ in range(2):",
                ),
            ),
            ("no key at all", swap(ANNOUNCE, ", " + KEY_HEADER, "")),
            ("no second try", swap(ANNOUNCE, "for _ in range(2):", "for _ in range(1):")),
            ("retries until it works", swap(ANNOUNCE, "for _ in range(2):", "while True:")),
            (
                "one channel after another",
                swap(
                    ANNOUNCE,
                    "await asyncio.gather(*(post(channel_id) for channel_id in channel_ids))",
                    "[await post(channel_id) for channel_id in channel_ids]",
                ),
            ),
            ("httpx's timeout per try, not a deadline", swap(ANNOUNCE, TRY, PER_STEP_TRY)),
            ("201 treated as a failure", swap(ANNOUNCE, "!= 201", "!= 200")),
            (
                "an error answer sent again",
                swap(ANNOUNCE, f"return CallFailed(path, {ERROR_CODE})", "continue"),
            ),
        ],
    },
    "09-replication.ipynb": {
        "exercise-9.1": [
            ("a majority of N+1", swap(QUORUM, "servers // 2 + 1", "(servers + 1) // 2 + 1")),
            ("half, not more than half", swap(QUORUM, "servers // 2 + 1", "servers // 2")),
            ("float division", swap(QUORUM, "servers // 2 + 1", "servers / 2 + 1")),
            ("off by one: more than a quorum", swap(QUORUM, ">= quorum", "> quorum")),
            (
                "writes go on while any server runs",
                swap(QUORUM, "servers - down >= quorum(servers)", "down < servers"),
            ),
            (
                "half rounded up, which is right for odd sizes only",
                "import math\n\n\n"
                + swap(
                    swap(QUORUM, "servers // 2 + 1", "math.ceil(servers / 2)"),
                    "servers - down >= quorum(servers)",
                    "down < quorum(servers)",
                ),
            ),
        ],
        "exercise-9.2": [
            ("unsolved", attendee.strip_solution(APPEND, "exercise 9.2")),
            ("no expected sequence", swap(APPEND, ",\n        " + EXPECTED, "")),
            (
                "the expected sequence from the last ack",
                swap(APPEND, "str(owner.applied)", "str(owner.acked)"),
            ),
            ("off by one", swap(APPEND, "str(owner.applied)", "str(owner.applied + 1)")),
            (
                "the stream's last sequence, not the subject's",
                swap(APPEND, "Nats-Expected-Last-Subject-Sequence", "Nats-Expected-Last-Sequence"),
            ),
            ("publish not awaited", swap(APPEND, "ack = await js.publish(", "ack = js.publish(")),
        ],
        "exercise-9.3": [
            ("unsolved", attendee.strip_solution(STORE, "exercise 9.3")),
            ("every repeat stored again", swap(STORE, REPEAT, "")),
            ("the ids remembered in memory", IN_MEMORY),
            ("the entry not applied", swap(STORE, "    owner.apply(seq, entry)\n", "")),
            (
                "a repeat answered with the last applied sequence",
                swap(STORE, "return owner.messages[message_id]", "return owner.applied"),
            ),
            ("append not awaited", swap(STORE, "seq = await append(", "seq = append(")),
        ],
        "exercise-9.4": [
            ("unsolved", attendee.strip_solution(UNDO, "exercise 9.4")),
            (
                "restoring to a time after the flood",
                swap(UNDO, FOR_TIME, "bookmark = await room.bookmark_for_time(time.time())"),
            ),
            ("the current bookmark", swap(UNDO, FOR_TIME, "bookmark = await room.bookmark()")),
            (
                "the bookmark made a number",
                swap(UNDO, "room.restore(bookmark)", "room.restore(int(bookmark))"),
            ),
            ("bookmarks compared as numbers", swap(UNDO, "    " + FOR_TIME + "\n", AS_NUMBERS)),
            (
                "the restored bookmark returned, not the undo",
                swap(
                    UNDO,
                    "return await room.restore(bookmark)",
                    "await room.restore(bookmark)\n    return bookmark",
                ),
            ),
            (
                "restore not awaited",
                swap(UNDO, "return await room.restore(", "return room.restore("),
            ),
        ],
    },
}

# What the check's report must say for each wrong answer: the words that name its mistake.
SAYS: dict[str, str | tuple[str, ...]] = {
    "exercise-0.1: messages in the catalog": "one actor per channel keeps them",
    "exercise-0.1: the counter in the shared database": "only the channel's own actor",
    "exercise-0.2: one way only": "that is one way",
    "exercise-0.2: the speed in vacuum": "that is the speed in vacuum",
    "exercise-0.2: seconds": "seconds and milliseconds mixed up",
    "exercise-0.2: whole milliseconds": "do not round",
    "exercise-1.1: 1 instead of true": "true is a JSON boolean",
    "exercise-1.1: a string": "true is a JSON boolean",
    "exercise-1.2: any shout= shouts, even false": "turns false into False",
    "exercise-1.2: shout as a string": "annotate the parameter as `shout: bool = False`",
    "exercise-1.2: never shouts": "greeting.upper()",
    "exercise-1.3: read, then write": "two visits read the same count",
    "exercise-1.3: a deferred transaction that reads first": "BEGIN IMMEDIATE",
    "exercise-1.3: a count in the kernel's memory": "in the database, not in a variable",
    "exercise-1.3: no commit": "was the UPDATE committed?",
    "exercise-2.1: no ORDER BY": "ORDER BY rowid",
    "exercise-2.1: no write transaction": "with write_transaction(conn):",
    "exercise-2.1: `with conn:`": "`with conn:` and conn.commit() begin nothing",
    "exercise-2.1: rows, not Servers": "build a Server(id=..., name=...) from each row",
    "exercise-2.2: no 201": "status_code=201",
    "exercise-2.2: a list that ignores the catalog": "list what select_servers(conn) returns",
    "exercise-2.3: server_id as text": "server_id: uuid.UUID",
    "exercise-2.3: no 404 for an unknown server": "raise ApiError(404, 'server_not_found'",
    "exercise-3.1: a task per message": "a task per message lets turns overlap",
    "exercise-3.1: receive not awaited": "coroutines (calls that were not awaited)",
    "exercise-3.1: the loop stops at the first error": "catch the exception inside the loop",
    "exercise-3.2: off by one": "the first asker gets 1",
    "exercise-3.2: never stores the new number": "store the new number in self.last_seq",
    "exercise-3.2: a counter outside the actor": "nothing outside it",
    "exercise-3.3: setdefault builds a SeqActor every time": "setdefault builds its default",
    "exercise-3.3: a new actor per ask": "keep the actor you build in self.channels[name]",
    "exercise-4.1: >= instead of >": "count > self.LIMIT, not >=",
    "exercise-4.1: the count cached in an attribute": "keep the count in storage only",
    "exercise-4.1: the limit checked before the put": "put first, then raise",
    "exercise-4.2: entries without ORDER BY": "ORDER BY number",
    "exercise-4.2: sqlite3.Row objects": "sqlite3.Row objects (turn rows into tuples",
    "exercise-4.2: numbering in memory": "UNIQUE constraint failed: entries.number",
    "exercise-4.3: no delete, no guard": "self.storage.delete('pending')",
    "exercise-4.3: deletes, but no guard": "alarms are at-least-once",
    "exercise-4.3: replaces the list": "append the pending text to 'delivered'",
    "exercise-5.1: numbers kept in memory, nothing stored": "INSERT each message",
    "exercise-5.1: the time in seconds": "int(time.time() * 1000)",
    "exercise-5.1: the highest seq of every channel": "seq of this channel (WHERE channel_id = ?)",
    "exercise-5.1: the sender left out of the broadcast": "the sender's too",
    "exercise-5.1: a bad frame raises instead of answering": "catch ProtocolError",
    "exercise-5.2: oldest first": "ORDER BY seq DESC",
    "exercise-5.2: every channel's messages": "a sibling channel's messages live in the same",
    "exercise-5.2: up to before, included": "WHERE seq < before",
    "exercise-5.2: no limit": "LIMIT limit",
    "exercise-5.3: every message twice": "send each row once",
    "exercise-5.3: no ORDER BY": "ORDER BY seq (without it",
    "exercise-5.3: from after_seq itself": "with seq > after_seq",
    "exercise-5.3: every channel's messages": "this channel's messages (channel_id = ?)",
    "exercise-5.3: the last seq of every channel": "'last_seq': <this channel's max(seq)>",
    "exercise-5.3: no 'resumed' frame": "after the replay, send {'type': 'resumed'",
    "exercise-6.1: the list sent to the newcomer only": "not only to the newcomer",
    "exercise-6.1: no new list after 'left'": "after 'left', broadcast 'presence' as well",
    "exercise-6.1: members of every channel": "the sockets of this channel only",
    "exercise-6.1: super().join not awaited": "join() was called without `await`",
    "exercise-6.1: 'joined' for every tab": "send 'joined' only when it is the user's only socket",
    "exercise-6.2: the counts for 2 servers x 2 channels": "the layouts change on every run",
    "exercise-6.2: one actor per channel in every mode": "count the distinct sharding keys",
    "exercise-6.2: a server-wide actor per channel": "count the distinct sharding keys",
    "exercise-6.2: one global actor even with no channels": "once a channel it hosts got a message",
    "exercise-7.1: the cost itself, not a rate": "the actor spends cost_ms on each message",
    "exercise-7.1: per millisecond, not per second": "one second is 1000 ms",
    "exercise-7.1: the ceiling for 20 ms, whatever the cost": "the actor spends cost_ms on each",
    "exercise-7.1: Little's law with milliseconds as seconds": "times time (in seconds)",
    "exercise-7.1: Little's law upside down": "rate (per second) times time",
    "exercise-7.1: integer division": "1000 // cost_ms rounds down",
    "exercise-7.2: the channel's key in every mode": "the proxy says 'server:",
    "exercise-7.2: a server-wide path names an actor even under channel sharding": (
        "a path without a channel id names no single actor"
    ),
    "exercise-7.2: an empty channel id for the server-wide path": (
        "/activity' you said 'channel:', the proxy says None"
    ),
    "exercise-7.2: every path names the global actor": "you said 'global', the proxy says None",
    "exercise-7.2: the key's hash modulo K": "with hash(key) % K most keys move",
    "exercise-7.2: workers numbered from 0": "numbered from 1",
    "exercise-7.2: the lowest score": "highest xxh64(address + key)",
    "exercise-7.2: key before address": "xxh64(address + key)",
    "exercise-7.3: the last step's load": "the last step in the list, and steps come in any",
    "exercise-7.3: the most offered, fast or not": "the highest load offered, kept up or not",
    "exercise-7.3: failures ignored": "it had 3 failures",
    "exercise-7.3: a step exactly at the limit left out": "its p99 is exactly the limit",
    "exercise-7.3: what was acked instead of the offered load": "that is what the step offered",
    "exercise-7.3: unacked messages ignored": "it acked only 80% of what it sent",
    "exercise-7.3: the generators' shortfall ignored": "the step measured the generators",
    "exercise-7.3: the median instead of the p99": "its p99 was",
    "exercise-7.3: the last good step before the first bad one": "that does not end the search",
    "exercise-7.3: acks compared with the offered load": "acks are compared with what was sent",
    "exercise-7.3: the generators' share read from the acks": "about what was sent, not what",
    "exercise-7.4: one call per channel in every mode": "one actor hosts a whole server",
    "exercise-7.4: one call in every mode": "one actor per channel with channel sharding",
    "exercise-7.4: one call per channel when global": "one actor hosts a whole server",
    "exercise-7.4: the remote calls only": "one actor per channel with channel sharding",
    "exercise-8.1: hosts numbered from 0": "counted from 1",
    "exercise-8.1: the channels that stay up": "you said channel-",
    "exercise-8.1: the key's hash modulo the host count": "the router's rule is owner_index",
    "exercise-8.2: unsolved": "first make the live channel's call work",
    "exercise-8.2: get not awaited": "first make the live channel's call work",
    "exercise-8.2: httpx's timeout per step, not a deadline": "httpx's timeout= limits each read",
    "exercise-8.2: no deadline": "the whole call must end by the deadline",
    "exercise-8.2: an error answer returned as a result": "any status but 200 raises CallFailed",
    "exercise-8.2: httpx's own error instead of CallFailed": "any status but 200 raises",
    "exercise-8.2: no reason given": "the reason is response.json()['code']",
    "exercise-8.2: the status as the reason": "the reason is response.json()['code']",
    "exercise-8.2: an unreachable host not caught": "catch httpx.TransportError",
    "exercise-8.2: the error's message as the reason": "the reason is type(error).__name__",
    "exercise-8.3: unsolved": "first make every path's answer right",
    "exercise-8.3: one call after another": "start every call first: asyncio.gather",
    "exercise-8.3: answers paired in the order they come back": "pair them with the paths",
    "exercise-8.3: one failure fails the whole fan-out": "must not fail the whole fan-out",
    "exercise-8.3: failures left out": "keep it as that path's answer",
    "exercise-8.4: unsolved": "POST to every channel at once",
    "exercise-8.4: a new key for each call": "one key for the whole announcement",
    "exercise-8.4: a key per channel": "not one per channel or per try",
    "exercise-8.4: no key at all": "send the repeat with the same Idempotency-Key",
    "exercise-8.4: no second try": "a call that times out is sent once more",
    "exercise-8.4: retries until it works": "is sent once more, no more",
    "exercise-8.4: one channel after another": "POST to every channel at once, with asyncio.gather",
    "exercise-8.4: httpx's timeout per try, not a deadline": "end each try at the deadline",
    "exercise-8.4: 201 treated as a failure": "201 Created is a POST's success",
    "exercise-8.4: an error answer sent again": "an error answer is an answer",
    "exercise-9.1: a majority of N+1": "the smallest number that is more than half",
    "exercise-9.1: half, not more than half": "the smallest number that is more than half",
    "exercise-9.1: float division": "use // for whole numbers",
    "exercise-9.1: off by one: more than a quorum": "Compare with quorum(1)",
    "exercise-9.1: writes go on while any server runs": "Compare with quorum(2)",
    "exercise-9.1: half rounded up, which is right for odd sizes only": (
        "half of an even number is not a majority"
    ),
    "exercise-9.2: unsolved": "still raises NotImplementedError",
    "exercise-9.2: no expected sequence": "send the header Nats-Expected-Last-Subject-Sequence",
    "exercise-9.2: the expected sequence from the last ack": (
        "its last APPLIED entry (owner.applied), not its own last ack",
        "skipped: host 2's epoch never began",
    ),
    "exercise-9.2: off by one": "not that of an empty subject (0)",
    "exercise-9.2: the stream's last sequence, not the subject's": (
        "(code 10071: wrong last sequence",
        "not the stream's",
        "skipped: the first append failed",
    ),
    "exercise-9.2: publish not awaited": "await js.publish(...)",
    "exercise-9.3: unsolved": "still raises NotImplementedError",
    "exercise-9.3: every repeat stored again": "a repeat (its first copy is in owner.messages",
    "exercise-9.3: the ids remembered in memory": "a set kept in memory dies with its host",
    "exercise-9.3: the entry not applied": (
        "apply the entry (owner.apply(seq, entry))",
        "skipped: store failed in this notebook",
    ),
    "exercise-9.3: a repeat answered with the last applied sequence": (
        "a repeat returns owner.messages[message_id]"
    ),
    "exercise-9.3: append not awaited": "seq = await append(...)",
    "exercise-9.4: unsolved": "still raises NotImplementedError",
    "exercise-9.4: restoring to a time after the flood": "nor the time now",
    "exercise-9.4: the current bookmark": (
        "not the current bookmark",
        "skipped: the room is not back as it was",
    ),
    "exercise-9.4: the bookmark made a number": (
        "as a number it loses its zeros",
        "skipped: no restore happened",
    ),
    "exercise-9.4: bookmarks compared as numbers": "as a number it loses its zeros",
    "exercise-9.4: the restored bookmark returned, not the undo": "not the one you restored",
    "exercise-9.4: restore not awaited": "is not awaited gives a future",
}


# Lines the runtime prints while a chapter's solution runs, quoted word for word in its prose.
QUOTED = {"09-replication.ipynb": ["restarts from the restored state, as asked"]}


def as_tuple(says: str | tuple[str, ...]) -> tuple[str, ...]:
    return (says,) if isinstance(says, str) else says


def tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def errors_of(cell: Any) -> list[str]:
    return [
        output["ename"] for output in cell.get("outputs", []) if output["output_type"] == "error"
    ]


def text_of(cell: Any) -> str:
    return "".join(
        "".join(output.get("text", ""))
        for output in cell.get("outputs", [])
        if output["output_type"] == "stream"
    )


def exercise_and_check(cells: list[Any], tag: str) -> tuple[int, int]:
    [exercise] = [index for index, cell in enumerate(cells) if tag in tags(cell)]
    check = next(
        index for index in range(exercise + 1, len(cells)) if "check" in tags(cells[index])
    )
    return exercise, check


@pytest.mark.usefixtures("kernel_temp_folder")
@pytest.mark.parametrize("chapter", sorted(WRONG_ANSWERS))
def test_every_known_wrong_answer_fails_at_its_own_exercise(chapter: str) -> None:
    path = attendee.SOLUTIONS_DIR / chapter
    notebook = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(attendee.NOTEBOOKS_DIR)}},
    )
    cells = notebook.cells
    passed_through: list[str] = []
    with client.setup_kernel():
        # Everything but the last cell (which stops what the checks still need).
        for index, cell in enumerate(cells[:-1]):
            client.execute_cell(cell, index)
            assert not errors_of(cell), f"the solution failed in cell {index}: {text_of(cell)}"
            if "check" in tags(cell):
                assert "All " in text_of(cell) and "checks passed." in text_of(cell), cell.source
            if cell.cell_type == "code" and cell.source.rstrip().endswith("\nfig"):
                # A figure as a cell's value is shown as a picture.
                shown = {kind for output in cell.outputs for kind in output.get("data", {})}
                assert "image/png" in shown, f"a figure shows only as {shown}: {cell.source}"
        for quoted in QUOTED.get(chapter, []):
            prose = [" ".join(c.source.split()) for c in cells if c.cell_type == "markdown"]
            assert any(quoted in text for text in prose), f"the prose does not quote {quoted!r}"
            assert any(quoted in text_of(cell) for cell in cells), f"{quoted!r} was not printed"
        for tag, wrong_answers in WRONG_ANSWERS[chapter].items():
            exercise, check = exercise_and_check(cells, tag)
            solution = cells[exercise].source
            for mistake, source in wrong_answers:
                cells[exercise].source = source
                client.execute_cell(cells[exercise], exercise)
                assert not errors_of(cells[exercise]), (tag, mistake)
                client.execute_cell(cells[check], check)
                report = text_of(cells[check])
                failed = errors_of(cells[check]) == ["CheckFailed"] and "❌" in report
                says = SAYS[f"{tag}: {mistake}"]
                if not failed or any(words not in report for words in as_tuple(says)):
                    passed_through.append(f"{tag}: {mistake}\n{report}")
            cells[exercise].source = solution
            client.execute_cell(cells[exercise], exercise)
        client.execute_cell(cells[-1], len(cells) - 1)
    assert passed_through == [], "wrong answers that passed or were not named:\n" + "\n".join(
        passed_through
    )


def test_every_exercise_of_every_chapter_has_known_wrong_answers() -> None:
    assert set(WRONG_ANSWERS) == {path.name for path in attendee.SOLUTIONS_DIR.glob("*.ipynb")}
    named = [f"{tag}: {m}" for by_tag in WRONG_ANSWERS.values() for tag, answers in by_tag.items()
             for m, _ in answers]  # fmt: skip
    assert sorted(named) == sorted(SAYS), "each wrong answer says what its report must name"
    for chapter, by_exercise in WRONG_ANSWERS.items():
        cells = json.loads((attendee.SOLUTIONS_DIR / chapter).read_text(encoding="utf-8"))["cells"]
        exercises = {tag for cell in cells for tag in tags(cell) if tag.startswith("exercise-")}
        assert exercises == set(by_exercise), chapter
        assert all(len(answers) >= 2 for answers in by_exercise.values()), chapter
