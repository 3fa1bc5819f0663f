"""Rate limits per operator and the relay's one priority queue (thread-safe, clock injected).

TokenBucket(per_min): any 60 s window holds at most per_min takes, also across a relay restart.
It holds at most a burst of b = max(1, per_min // 10) and refills (per_min - b) / 60 per second,
so b + 60 s of refill is exactly per_min. It starts empty: a relay killed right after a burst and
started again must not add a second burst to the same minute (the first request after a start
waits 1 / rate: 0.33 s for AuthorizeStart at Hubject's 200/min). A hub's 429 holds a bucket for
its Retry-After (hold()).

Scheduler: requests wait in chains (one per session, one per push operation of an operator, or
none): only a chain's head is eligible, so a session's messages leave in their order. Among
eligible requests whose bucket has a token, the lowest (priority, arrival) goes first. A Progress
whose session still has a queued (not yet sent) Progress at the end of its chain replaces it
(coalescing); the replaced one's ids ride on the newer request and get its reply. A status push
meets a queued one of its operator the same way: they merge into one push (per EVSE the newer
by the charger journal's seq, else the later to arrive; up to envelope.MAX_BATCH records), whose
answer goes to every charger in it.
"""
import heapq
import itertools
import threading
import time

from host_sim.relay import envelope


class QueueFull(Exception):
    pass


class TokenBucket:
    def __init__(self, per_min, now):
        self.burst = max(1, per_min // 10)
        self.rate = max(per_min - self.burst, 1) / 60.0
        self.tokens, self.at, self.held_until = 0.0, now, now

    def _refill(self, now):
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def ready_at(self, now):
        """When the next token can be taken (<= now: at once)."""
        self._refill(now)
        wait = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
        return max(now + wait, self.held_until)

    def take(self, now):
        self._refill(now)
        self.tokens -= 1

    def hold(self, until):
        self.held_until = max(self.held_until, until)


class Scheduler:
    """put() from the MQTT thread, take()/done() from the forwarding workers."""

    def __init__(self, limits, max_items=10_000, max_wait_s=120.0, clock=time.monotonic):
        self.limits, self.max_items, self.max_wait_s = limits, max_items, max_wait_s
        self.clock = clock
        self.buckets = {}   # (operator, limit name) -> TokenBucket
        self.ready = {}     # same key -> heap of (priority, seq, request) eligible to go
        self.chains = {}    # chain key -> list of requests, head first (head may be in flight)
        self.count = 0      # requests queued or in flight
        self.inflight = 0
        self._seq = itertools.count()
        self._n = itertools.count()  # heap tiebreak: a coalesced Progress reuses a seq
        self._cv = threading.Condition()
        self.closed = False

    def _key(self, r):
        k = (r.operator, r.limit)
        if k not in self.buckets:
            self.buckets[k] = TokenBucket(self.limits[r.limit], self.clock())
            self.ready[k] = []
        return k

    def put(self, r):
        """Queues r; returns the request r superseded (its ids now ride on r), or None."""
        with self._cv:
            chain = self.chains.get(r.chain) if r.chain is not None else None
            old = chain[-1] if chain else None
            if (old is not None and r.kind == "Progress" and old.kind == "Progress"
                    and old.state == "queued"):
                old.state = "superseded"  # its heap entry, if any, is skipped when popped
                r.ids = old.ids + r.ids
                r.seq, r.deadline = old.seq, old.deadline  # its place in the queue
                chain[-1] = r
                r.state = "queued"
                if len(chain) == 1:
                    self._eligible(r)
                return old
            if (old is not None and r.kind == "PushEvseStatus" and old.kind == r.kind
                    and old.state == "queued"):
                merged = envelope.merge_status(old, r)
                if merged is not None:  # one push carries both: the newer per EVSE
                    old.state = "superseded"
                    merged.seq, merged.deadline, merged.state = old.seq, old.deadline, "queued"
                    chain[-1] = merged
                    if len(chain) == 1:
                        self._eligible(merged)
                    return old
            if self.count >= self.max_items:
                raise QueueFull("relay queue full (%d requests)" % self.max_items)
            r.seq, r.deadline, r.state = next(self._seq), self.clock() + self.max_wait_s, "queued"
            self.count += 1
            if r.chain is not None:
                self.chains.setdefault(r.chain, []).append(r)
            if r.chain is None or len(self.chains[r.chain]) == 1:
                self._eligible(r)
            return None

    def _eligible(self, r):
        heapq.heappush(self.ready[self._key(r)], (r.priority, r.seq, next(self._n), r))
        # One more request can go: one worker to wake. Not more (notify_all() on each answer
        # woke all 16 workers to find nothing: ~15% of the relay's CPU at 1,700 requests/s),
        # and none for a request that waits behind its session's previous one.
        self._cv.notify()

    def take(self, timeout=None):
        """The next request to send (state "sending"), or one that waited past max_wait_s
        (state "expired": answer it without sending), or None at timeout or close()."""
        end = None if timeout is None else self.clock() + timeout
        with self._cv:
            while not self.closed:
                now = self.clock()
                best, wakes = None, [end] if end is not None else []
                for k, heap in self.ready.items():
                    while heap and heap[0][3].state != "queued":
                        heapq.heappop(heap)
                    if not heap:
                        continue
                    r = heap[0][3]
                    if r.deadline <= now:
                        heapq.heappop(heap)
                        r.state = "expired"
                        return r
                    at = self.buckets[k].ready_at(now)
                    if at > now:
                        wakes += (at, r.deadline)
                    elif best is None or heap[0][:2] < best[1][0][:2]:
                        best = (k, heap)
                if best is not None:
                    k, heap = best
                    r = heapq.heappop(heap)[3]
                    self.buckets[k].take(now)
                    r.state = "sending"
                    self.inflight += 1
                    return r
                if end is not None and now >= end:
                    return None
                self._cv.wait(max(min(wakes) - now, 0.001) if wakes else None)
            return None

    def done(self, r, hold_s=None):
        """r was answered (or expired); the next of its chain becomes eligible. hold_s: the
        hub's Retry-After, which holds r's bucket."""
        with self._cv:
            if r.state == "sending":
                self.inflight -= 1
            r.state = "done"
            self.count -= 1
            if hold_s:
                self.buckets[self._key(r)].hold(self.clock() + hold_s)
            chain = self.chains.get(r.chain) if r.chain is not None else None
            if chain:
                chain.remove(r)
                if chain:
                    self._eligible(chain[0])
                else:
                    del self.chains[r.chain]

    def close(self):
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def depth(self):
        with self._cv:
            return self.count - self.inflight
