"""The Python client against a server with the DEFAULT rate limit (120 requests a minute).

Starts ``cadenza serve`` (one local worker, temp dirs, default rate limit), then with one
:class:`cadenza.client.CadenzaClient`:

(a) a batch of ``--jobs`` drums jobs: all submitted, then each waited for (long-poll) and its MIDI
    downloaded;
(b) one separation (hpss) of a ``--song-s`` second demo song (``cadenza demo-song``), waited for.

Counts every HTTP request and every 429 the server answered (the client paces itself on the
``RateLimit-*`` headers and would wait out a 429's ``Retry-After``; the goal is that none happens), and
reports the separation's real-time factor (run time / song duration). Writes
``benchmarks/results/client_batch.json``.

    .venv/bin/python benchmarks/client_batch.py [--jobs 50] [--song-s 300]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _machine import describe_machine
from api_latency import start_server

from cadenza.client import CadenzaClient
from cadenza.engines.separation.demo import TEMPO_BPM, write_demo_song

RESULTS = Path(__file__).resolve().parent / "results" / "client_batch.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50, help="drums jobs in the batch")
    parser.add_argument("--song-s", type=float, default=300.0, help="length of the song to separate, in s")
    args = parser.parse_args()
    info = describe_machine()
    print(f"machine: {info['cpu']}, {info['usable_cores']} usable / {info['logical_cores']} logical cores")
    statuses: Counter[int] = Counter()
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-") as tmp:
        process, base = start_server(Path(tmp), rate_limit=None)
        try:
            http = httpx.Client(
                base_url=base, timeout=90, event_hooks={"response": [lambda r: statuses.update([r.status_code])]}
            )
            with http, CadenzaClient(http=http) as client:
                started = time.perf_counter()
                jobs = [
                    client.submit("drums", {"producer_style": "J Dilla", "bars": 1, "seed": seed})
                    for seed in range(args.jobs)
                ]
                for job in jobs:
                    done = client.wait(job["id"])
                    if done["status"] != "completed":
                        raise SystemExit(f"job {job['id']} ended {done['status']}: {done['error']}")
                    client.download(job["id"], "groove.mid", Path(tmp) / f"{job['id']}.mid")
                batch_s = time.perf_counter() - started
                batch_requests = sum(statuses.values())
                song = write_demo_song(Path(tmp) / "song.wav", bars=math.ceil(args.song_s / (4 * 60 / TEMPO_BPM)))
                started = time.perf_counter()
                separation = client.submit("separations", {"model": "hpss"}, file=song)
                separation = client.wait(separation["id"])
                separation_s = time.perf_counter() - started
                if separation["status"] != "completed":
                    raise SystemExit(f"separation ended {separation['status']}: {separation['error']}")
                retries = client.retries
        finally:
            process.terminate()
            process.wait(timeout=60)
    duration_s = separation["inputs"]["file"]["duration_s"]
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "rate_limit": "120/minute (default)",
        "batch": {"jobs": args.jobs, "wall_s": round(batch_s, 1), "requests": batch_requests},
        "separation": {
            "song_s": round(duration_s, 1),
            "wall_s": round(separation_s, 1),
            "run_s": separation["run_duration_s"],
            "rtf": round(separation["run_duration_s"] / duration_s, 3),
        },
        "requests": sum(statuses.values()),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "answers_429": statuses[429],
        "client_retries": retries,
    }
    print(json.dumps(result, indent=1))
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    if statuses[429]:
        sys.exit(1)


if __name__ == "__main__":
    main()
