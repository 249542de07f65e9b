"""The studio benchmark, shrunk: a real studio on a loopback port, three requests of two steps; every number of
the report is there and consistent."""
import json

from noisebrush.bench.__main__ import main


def test_studio_bench_quick(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["studio", "--requests", "3", "--clients", "2", "--queue", "8", "--steps", "2", "--json",
                 str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["benchmark"] == "studio" and r["steps"] == 2 and r["queue"] == 8
    c = r["concurrent"]
    assert (c["requests"], c["clients"], c["completed"], c["refused"], c["failed"]) == (3, 2, 3, 0, 0), c["errors"]
    assert len(c["latencies_s"]) == 3 and 0 < c["latency_p50_s"] <= c["latency_p95_s"] <= c["latency_max_s"]
    assert c["throughput_pictures_per_s"] > 0 and c["wall_s"] > 0
    for phase in ("cold", "single"):
        p = r[phase]
        assert p["pictures"] == 1 and p["latency_s"] > 0
        assert p["first_preview_s"] is not None and 0 < p["first_preview_s"] <= p["latency_s"]
        assert p["first_preview_server_s"] is not None
    assert r["server_alive"] and r["pictures_saved"] == 5
    assert 100 * 2 ** 20 < r["peak_rss_bytes"] < 3 * 2 ** 30
    shown = capsys.readouterr()
    assert "studio over HTTP" in shown.out and "report →" in shown.out


def test_studio_bench_bad_flag(capsys):
    assert main(["studio", "--requests", "0"]) == 2
    assert "--requests" in capsys.readouterr().err
    assert main(["studio", "--steps", "101"]) == 2
    assert "--steps" in capsys.readouterr().err
