"""The relay as a child process, for tests and benchmarks: started, subscribed, stopped."""
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY = "relay: ready http://"


def healthy(port, proc=None, tries=1000):
    """Wait until /health answers 200 (the relay is subscribed: a request published before
    would find no one); a bounded wait, not a timed check. RuntimeError if it never does."""
    for _ in range(tries):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("relay exited with %s" % proc.returncode)
        try:
            if urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2).status \
                    == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("relay on :%d never became healthy" % port)


def spawn(cfg_path, client_id=None, env=None):
    """`python -m host_sim relay --config cfg_path` as our child, once subscribed:
    (proc, metrics port). Its stderr goes to a file (a pipe nobody reads would fill and stall
    it), and a relay that does not start raises with the tail of it."""
    err = tempfile.TemporaryFile()
    args = [sys.executable, "-m", "host_sim", "relay", "--config", cfg_path,
            "--log-level", "WARNING"] + (["--client-id", client_id] if client_id else [])
    with err:  # the child keeps its own descriptor: the file goes once both are closed
        p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                             stdin=subprocess.DEVNULL, text=True, env=env)
        line = p.stdout.readline().strip()
        try:
            if not line.startswith(READY):
                raise RuntimeError("relay did not start: %r" % line)
            port = int(line.rsplit(":", 1)[1])
            healthy(port, p)
        except RuntimeError as e:
            stop(p)
            err.seek(0)
            raise RuntimeError("%s; its stderr: %s" % (e, err.read()[-2000:].decode(
                errors="replace"))) from None
    return p, port


def stop(p):
    """SIGTERM (the relay drains), then SIGKILL after 15 s."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
