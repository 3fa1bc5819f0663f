"""Test helpers that work the same under CPython (pytest) and MicroPython (tools/mpy_test.mjs)."""


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail if it raised nothing or another type."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s from %s" % (exc_type.__name__, fn))


def raises_naming(exc_type, text, fn, *args, **kwargs):
    """Like raises(), and the error message must contain `text` (e.g. the field's name)."""
    e = raises(exc_type, fn, *args, **kwargs)
    msg = str(e)
    if text not in msg:
        raise AssertionError("error %r does not name %r" % (msg, text))
    return e


def arun(coro):
    """Run a coroutine to the end: asyncio.run on CPython; the MicroPython runner awaits it.

    It runs as a task of its own: asyncio.wait_for must wake its caller, which the top level of
    the webassembly port cannot be.
    """
    import asyncio
    import sys

    async def main():
        return await asyncio.create_task(coro)

    if sys.implementation.name == "micropython":
        return main()
    asyncio.run(main())


async def stop(task):
    """Cancel a task and wait for its end. The cancel is repeated until the task is done: CPython
    3.11's asyncio.wait_for swallows a cancel that lands as the awaited read completes."""
    import asyncio

    while not task.done():
        task.cancel()
        await asyncio.sleep(0)
    try:
        await task
    except asyncio.CancelledError:
        pass


async def until(cond, what, steps=4000, advance=None, pause=0):
    """Let the loop run until cond(): each step advance() (e.g. board time on) if given, then a
    sleep of `pause` s. Bounded: after `steps` an AssertionError naming `what`."""
    import asyncio

    for _ in range(steps):
        if cond():
            return
        if advance is not None:
            advance()
        await asyncio.sleep(pause)
    raise AssertionError("never happened: " + what)


class Sink:
    """A meter bus's sink: the readings and the faults it was given, in order."""

    def __init__(self):
        self.meters = []
        self.faults = []

    def meter(self, i, wh, w):
        self.meters.append((i, wh, w))

    def fault(self, i, connector, text):
        self.faults.append((i, connector, text))


class ClosedPort:
    """A serial port whose reads all return b"" (a closed device); writes go nowhere."""

    def write(self, data):
        pass

    async def drain(self):
        pass

    async def read(self, n):
        import asyncio

        await asyncio.sleep(0)  # yields, so a driver spinning on it cannot hang the test
        return b""
