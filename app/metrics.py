"""Request metrics in the Prometheus text format, per process.

Each worker process counts its own requests; a scraper that reaches the workers through one
port sees one worker at a time, so the counters are labelled with the process id."""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import Counter
from threading import Lock

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.buckets: Counter[int] = Counter()
        self.duration_sum = 0.0
        self.count = 0

    def observe(self, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, status)] += 1
            self.buckets[bisect_left(BUCKETS, seconds)] += 1
            self.duration_sum += seconds
            self.count += 1

    def render(self) -> str:
        pid = os.getpid()
        lines = [
            "# HELP sipas_requests_total HTTP requests answered, by method and status.",
            "# TYPE sipas_requests_total counter",
        ]
        with self._lock:
            for (method, status), n in sorted(self.requests.items()):
                lines.append(
                    f'sipas_requests_total{{method="{method}",status="{status}",pid="{pid}"}} {n}'
                )
            lines += [
                "# HELP sipas_request_duration_seconds Time to answer a request.",
                "# TYPE sipas_request_duration_seconds histogram",
            ]
            running = 0
            for i, bound in enumerate(BUCKETS):
                running += self.buckets[i]
                lines.append(
                    f'sipas_request_duration_seconds_bucket{{le="{bound}",pid="{pid}"}} {running}'
                )
            lines.append(
                f'sipas_request_duration_seconds_bucket{{le="+Inf",pid="{pid}"}} {self.count}'
            )
            lines.append(f'sipas_request_duration_seconds_sum{{pid="{pid}"}} {self.duration_sum}')
            lines.append(f'sipas_request_duration_seconds_count{{pid="{pid}"}} {self.count}')
        return "\n".join(lines) + "\n"


METRICS = Metrics()
