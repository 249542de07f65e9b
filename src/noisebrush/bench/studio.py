"""The web studio under load, measured over HTTP: one painting's latency and time to its first live preview, then a
burst of concurrent paintings against the studio's bounded queue.

    python -m noisebrush.bench studio --requests 20 --clients 4 --queue 16 --steps 20 --json outputs/bench-studio.json

It starts ``noisebrush studio`` in a child process on a free loopback port (127.0.0.1 only), with its gallery and
home in a temporary folder that is removed afterwards, and talks to it with ``gradio_client`` exactly as a script
would (the ``/paint`` endpoint, one 32 px picture of the built-in model per request, distinct seeds):

* ``cold`` — the first request, sent as soon as the studio listens (it may wait for the built-in model, which the
  studio loads in the background as it starts);
* ``single`` — one request on the warm studio: its latency (submit → last output) and the time to its first streamed
  x̂_0 preview (the server's own measure of that, from its reply, is reported too);
* ``concurrent`` — ``--requests`` requests fired at once from ``--clients`` clients (threads, one gradio session
  each): how many were painted and how many were told the queue is full (``--queue`` may wait, one runs: the
  studio's default ``--jobs 1``), pictures per second over the burst (first submit → last picture), and p50/p95 of
  the painted requests' latencies (queueing included).

The studio process's resident memory (children included) is sampled every 0.1 s from start to stop: its peak is
reported. The pictures the studio wrote are counted in its gallery.
"""
from __future__ import annotations

import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from noisebrush.bench.common import BenchParser, check_report_path, finish
from noisebrush.bench.launch import rss, start_studio, stop_studio
from noisebrush.checks import whole
from noisebrush.errors import UserError

__all__ = ["run", "print_table", "main"]

PROMPT = "a red sun over purple mountains"
QUEUE_FULL = "Queue is full"  # gradio_client's QueueError when gradio answers 503 "queue_full"
JOB_TIMEOUT = 900.0           # seconds one request may take, queueing included


def _args(seed: int, steps: int) -> tuple:
    """The ``/paint`` endpoint's arguments (``apps/studio/tabs/paint.py``'s ``run``): one 32 px picture."""
    return (PROMPT, "", 32, "builtin", [], 1.0, "", steps, 3.0, seed, 1, "", 0.15, 1, 0.0)


def _is_preview(value) -> bool:
    """Whether the preview output of one streamed update holds a picture (not None, not ``gr.skip()``)."""
    return value is not None and not (isinstance(value, dict) and value.get("__type__") == "update")


def _pct(values, q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


class _Peak:
    """The studio process's peak resident memory, sampled in a thread."""

    def __init__(self, proc, every: float = 0.1):
        self.rss, self.proc, self.every = rss, proc, every
        self.peak = rss(proc)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="noisebrush-rss", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.rss(self.proc))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def _single(client, seed: int, steps: int) -> dict:
    """One request, its outputs read as they stream: latency and time to the first preview."""
    t = time.perf_counter()
    job = client.submit(*_args(seed, steps), api_name="/paint")
    first = None
    for out in job:
        if first is None and _is_preview(out[0]):
            first = time.perf_counter() - t
    value = job.result(timeout=JOB_TIMEOUT)
    took = time.perf_counter() - t
    found = re.search(r"first preview after ([0-9.]+) s", str(value[2]))
    return {"latency_s": took, "first_preview_s": first,
            "first_preview_server_s": float(found.group(1)) if found else None, "pictures": len(value[1] or [])}


def _burst(url: str, *, requests: int, clients: int, steps: int, seed: int) -> dict:
    """``requests`` paintings fired at once from ``clients`` clients (round-robin)."""
    from gradio_client import Client  # lazy: only this benchmark talks to a studio

    sessions = [Client(url, verbose=False, download_files=False) for _ in range(clients)]
    done: dict[int, float] = {}

    def fire(k: int) -> list[tuple]:
        jobs = []
        for i in range(k, requests, clients):
            start = time.perf_counter()
            job = sessions[k].submit(*_args(seed + i, steps), api_name="/paint")
            job.add_done_callback(lambda _, i=i: done.setdefault(i, time.perf_counter()))
            jobs.append((i, start, job))
        out = []
        for i, start, job in jobs:
            try:
                value = job.result(timeout=JOB_TIMEOUT)
                out.append((i, start, value, None))
            except Exception as e:  # noqa: BLE001 - refused or failed: counted below
                out.append((i, start, None, f"{type(e).__name__}: {e}"))
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        outcomes = [o for f in [pool.submit(fire, k) for k in range(clients)] for o in f.result()]
    latencies, refused, errors, last = [], 0, [], t0
    for i, start, value, error in outcomes:
        if error is None and value[1]:
            latencies.append(done[i] - start)
            last = max(last, done[i])
        elif error is not None and QUEUE_FULL in error:
            refused += 1
        else:
            errors.append(error or f"request {i}: no picture ({value[2]!r})")
    wall = (last if latencies else time.perf_counter()) - t0
    return {"requests": requests, "clients": clients, "completed": len(latencies), "refused": refused,
            "failed": len(errors), "errors": errors[:5], "wall_s": wall,
            "throughput_pictures_per_s": len(latencies) / wall if latencies and wall > 0 else 0.0,
            "latency_p50_s": _pct(latencies, 0.5), "latency_p95_s": _pct(latencies, 0.95),
            "latency_max_s": max(latencies) if latencies else None, "latencies_s": sorted(latencies)}


def run(*, requests: int = 20, clients: int = 4, queue: int = 16, steps: int = 20, seed: int = 1000,
        log=print) -> dict:
    from gradio_client import Client  # lazy: only this benchmark talks to a studio

    with tempfile.TemporaryDirectory(prefix="noisebrush-bench-studio-") as tmp:
        t = time.perf_counter()
        try:
            server = start_studio(Path(tmp), "--queue", str(queue))
        except RuntimeError as e:
            last = [line for line in str(e).splitlines() if line.strip()]
            raise UserError(f"the studio did not start: {last[-1] if last else e}") from None
        startup = time.perf_counter() - t
        log(f"studio on {server.url} in {startup:.1f} s")
        peak = _Peak(server.proc)
        try:
            client = Client(server.url, verbose=False, download_files=False)
            try:
                cold = _single(client, seed - 2, steps)
            except Exception as e:  # noqa: BLE001 - gradio_client's AppError: the studio's one line
                raise UserError(f"the studio could not paint: {' '.join(str(e).split()) or type(e).__name__}"
                                ) from None
            log(f"first request: {cold['latency_s']:.2f} s")
            single = _single(client, seed - 1, steps)
            log(f"single request: {single['latency_s']:.2f} s, first preview after "
                f"{single['first_preview_s'] or float('nan'):.2f} s")
            burst = _burst(server.url, requests=requests, clients=clients, steps=steps, seed=seed)
            log(f"{requests} requests from {clients} clients: {burst['completed']} painted, {burst['refused']} "
                f"refused, {burst['failed']} failed in {burst['wall_s']:.1f} s")
            alive = server.proc.poll() is None
            saved = len([p for p in server.gallery.glob("*.png")])
        finally:
            peak_rss = peak.stop()
            stop_studio(server.proc)
    return {"benchmark": "studio", "requests": requests, "clients": clients, "queue": queue, "jobs": 1,
            "steps": steps, "size": 32, "seed": seed, "startup_s": startup, "cold": cold, "single": single,
            "concurrent": burst, "peak_rss_bytes": peak_rss, "peak_rss_mib": peak_rss / 2 ** 20,
            "server_alive": alive, "pictures_saved": saved}


def _s(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def print_table(report: dict) -> None:
    c = report["concurrent"]
    t = Table(title=f"studio over HTTP: {report['steps']} steps, 1 picture of 32 px a request; queue "
                    f"{report['queue']}, {report['jobs']} job at a time; peak RSS {report['peak_rss_mib']:.0f} MiB")
    for col in ("", "requests", "painted", "refused", "failed", "pictures/s", "p50 s", "p95 s", "first preview s"):
        t.add_column(col, justify="left" if not col else "right")
    for name, r in (("cold (first request)", report["cold"]), ("single", report["single"])):
        t.add_row(name, "1", str(r["pictures"]), "0", "0", f"{r['pictures'] / r['latency_s']:.2f}",
                  _s(r["latency_s"]), _s(r["latency_s"]), _s(r["first_preview_s"]))
    t.add_row(f"concurrent, {c['clients']} clients", str(c["requests"]), str(c["completed"]), str(c["refused"]),
              str(c["failed"]), f"{c['throughput_pictures_per_s']:.2f}", _s(c["latency_p50_s"]),
              _s(c["latency_p95_s"]), "—")
    con = Console()
    Console(width=max(con.width, 120)).print(t)
    for e in c["errors"]:
        print(f"failed: {e}")


def main(argv=None) -> int:
    ap = BenchParser(prog="python -m noisebrush.bench studio", description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20, help="concurrent paint requests (one picture each)")
    ap.add_argument("--clients", type=int, default=4, help="gradio clients (sessions) they come from")
    ap.add_argument("--queue", type=int, default=16, help="the studio's --queue: requests that may wait")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps of every request")
    ap.add_argument("--seed", type=int, default=1000, help="the first request's seed (the others follow)")
    ap.add_argument("--json", default=None, help="write the report here")
    a = ap.parse_args(argv)
    whole("--requests", a.requests, 1, 1000)
    whole("--clients", a.clients, 1, 64)
    whole("--queue", a.queue, 1, 1000)
    whole("--steps", a.steps, 1, 100)  # the studio's own limit
    whole("--seed", a.seed, 2, 2 ** 62)
    if a.json:
        check_report_path(a.json)
    report = run(requests=a.requests, clients=min(a.clients, a.requests), queue=a.queue, steps=a.steps, seed=a.seed,
                 log=lambda s: print(s, file=sys.stderr))
    return finish(report, print_table, a.json, note="report → {path}")


if __name__ == "__main__":
    sys.exit(main())
