"""The studio under a burst of paintings, bounded: 20 requests from 4 clients at once against a queue of 6, on a
loopback port. Every request either paints a correct picture into the gallery or is told the queue is full; the
server survives, answers, stays within its memory, and leaves nothing half-written."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gradio_client import Client
from PIL import Image

from noisebrush.bench.launch import rss, start_studio, stop_studio
from noisebrush.io.png import read_recipe

CLIENTS, PER_CLIENT, QUEUE = 4, 5, 6
RSS_BOUND = 3 * 2 ** 30
QUEUE_FULL = "Queue is full"  # gradio_client's QueueError for gradio's 503 "queue_full"


def paint_args(seed: int, steps: int) -> tuple:
    """The /paint endpoint's arguments (`tabs/paint.py`'s `run`): one 32 px picture."""
    return ("a red sun over purple mountains", "", 32, "builtin", [], 1.0, "", steps, 3.0, seed, 1, "", 0.15, 1, 0.0)


def pct(values, q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_studio(tmp_path_factory.mktemp("load"), "--queue", str(QUEUE))
    try:
        yield s
    finally:
        stop_studio(s.proc)


def test_a_burst_of_paintings(server):
    t0 = time.perf_counter()
    peak = [rss(server.proc)]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.1):
            peak[0] = max(peak[0], rss(server.proc))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        warm = Client(server.url, verbose=False, download_files=False)
        warm.predict(*paint_args(1, 4), api_name="/paint")  # loads the model
        t = time.perf_counter()
        warm.predict(*paint_args(2, 6), api_name="/paint")
        single = time.perf_counter() - t

        clients = [Client(server.url, verbose=False, download_files=False) for _ in range(CLIENTS)]
        plan = [(c, 100 + i * PER_CLIENT + k, 2 + (i * PER_CLIENT + k) % 3)  # steps 2 … 4, distinct seeds
                for i, c in enumerate(clients) for k in range(PER_CLIENT)]
        results: dict[int, tuple] = {}

        def fire(client_jobs):
            jobs = []
            for client, seed, steps in client_jobs:
                start = time.perf_counter()
                job = client.submit(*paint_args(seed, steps), api_name="/paint")
                job.add_done_callback(lambda _, seed=seed: results.setdefault(seed, (time.perf_counter(),)))
                jobs.append((seed, steps, start, job))
            out = []
            for seed, steps, start, job in jobs:
                try:
                    value = job.result(timeout=120)
                    out.append((seed, steps, start, value, None))
                except Exception as e:  # noqa: BLE001 - every failure is judged below
                    out.append((seed, steps, start, None, e))
            return out

        burst = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            per_client = [pool.submit(fire, [p for p in plan if p[0] is c]) for c in clients]
            outcomes = [o for f in per_client for o in f.result(timeout=180)]
        finished = [results[seed][0] for seed, _, _, value, _ in outcomes if value is not None]
        burst_s = (max(finished) if finished else time.perf_counter()) - burst  # first submit → last picture
    finally:
        stop.set()
        sampler.join(5)

    completed, refused, latencies = [], [], []
    for seed, steps, start, value, error in outcomes:
        if error is not None:
            text = str(error)
            assert QUEUE_FULL in text and "Traceback" not in text, f"seed {seed}: {type(error).__name__}: {text}"
            refused.append(seed)
            continue
        _, pics, info = value
        assert f"painted 1 picture (seed {seed})" in info, info
        assert len(pics) == 1
        path = server.gallery / os.path.basename(pics[0]["image"]["path"])
        assert path.is_file(), path
        with Image.open(path) as img:
            img.load()
            assert img.size == (32, 32) and img.format == "PNG"
        recipe = read_recipe(path)
        assert recipe["seed"] == seed and recipe["steps"] == steps, recipe
        completed.append(seed)
        latencies.append(results[seed][0] - start)

    assert len(completed) + len(refused) == CLIENTS * PER_CLIENT
    assert completed, "no request completed"
    assert refused, f"a queue of {QUEUE} took all {CLIENTS * PER_CLIENT} requests at once"
    assert len(completed) >= QUEUE  # what was admitted was painted, none lost

    # still alive, still answering, still within bounds
    assert server.proc.poll() is None
    assert httpx.get(server.url, timeout=30).status_code == 200
    after = Client(server.url, verbose=False, download_files=False)
    _, pics, _ = after.predict(*paint_args(999, 4), api_name="/paint")
    assert len(pics) == 1
    assert peak[0] < RSS_BOUND, f"peak RSS {peak[0] / 2 ** 30:.2f} GiB"

    # nothing half-written: every file of the gallery is a whole PNG, no hidden or temporary files beside the index
    files = [p for p in server.gallery.rglob("*") if p.is_file()]
    index = server.gallery / ".noisebrush"
    stray = [p for p in files if not p.is_relative_to(index) and (p.name.startswith(".") or p.suffix != ".png")]
    assert not stray, stray
    pngs = [p for p in files if not p.is_relative_to(index)]
    for p in pngs:
        with Image.open(p) as img:
            img.load()
    assert len(pngs) == len(completed) + 3  # the warm-up, the single request and the one after

    throughput = len(completed) / burst_s
    report = (f"studio load: {CLIENTS}×{PER_CLIENT} requests, queue {QUEUE}: {len(completed)} painted, "
              f"{len(refused)} refused (queue full); {throughput:.2f} pictures/s over {burst_s:.1f} s; "
              f"latency p50 {pct(latencies, 0.5):.2f} s, p95 {pct(latencies, 0.95):.2f} s vs single {single:.2f} s; "
              f"peak RSS {peak[0] / 2 ** 20:.0f} MiB; test {time.perf_counter() - t0:.0f} s")
    print(report)
    assert time.perf_counter() - t0 < 150
