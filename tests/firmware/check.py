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
