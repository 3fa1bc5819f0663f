"""A fake charger core for the link tests: messages to hand out, what the link did with them."""


class Charger:
    """The part of cpagent.charger.Charger the link uses, over a list of messages."""

    def __init__(self, n=0, keys=None):
        self.queue = [("m%d" % i, "/p", {"i": i}, keys[i] if keys else "s")
                      for i in range(n)]
        self.auth = []
        self.lost = []  # orphaned AuthorizeStarts: (key, path, body)
        self.done = []  # ("delivered", id) / ("failed", id, reason) / ("authorized", i, r) ...
        self.tries = {}  # msg id -> attempts the link counted
        self.boom = 0  # next_message raises this many times

    def authorizations(self):
        out, self.auth = self.auth, []
        return out

    def orphans(self):
        out, self.lost = self.lost, []
        return out

    def resolved(self, key, kind, value):
        self.done.append(("resolved", key, kind, value))

    def next_message(self, hold=()):
        if self.boom:
            self.boom -= 1
            raise RuntimeError("flash read")
        for m in self.queue:
            if m[3] not in hold:
                return m
        return None

    def _take(self, msg_id):
        for m in self.queue:
            if m[0] == msg_id:
                self.queue.remove(m)
                return
        raise AssertionError("not pending: " + msg_id)

    def delivered(self, msg_id):
        self._take(msg_id)
        self.done.append(("delivered", msg_id))

    def failed(self, msg_id, reason):
        self._take(msg_id)
        self.done.append(("failed", msg_id, reason))
        return True  # kept as a dead letter

    def retry(self, msg_id):
        self.tries[msg_id] = self.tries.get(msg_id, 0) + 1
        return self.tries[msg_id]

    def authorized(self, i, reply):
        self.done.append(("authorized", i, reply))

    def authorize_failed(self, i, reason):
        self.done.append(("authorize_failed", i, reason))
