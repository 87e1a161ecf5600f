"""Child-process bodies of test_publisher_concurrency.py.

They live in an importable module (not the test module, which pytest
imports under its own name) so that ``spawn`` children can import them.
"""

from __future__ import annotations

import multiprocessing.synchronize
from multiprocessing.queues import Queue
from pathlib import Path

from blocklist.store import Database
from signer.datadir import keys_dir_of
from signer.publisher import Publisher
from support.publish_helpers import START, add_active

Results = Queue  # Queue[tuple[str, str, object]]


def adder(url: str, start: int, count: int, results: Results[tuple[str, str, object]]) -> None:
    """Add and approve ``count`` entries, one transaction each."""
    name = f"adder{start}"
    db = Database(url)
    try:
        for i in range(start, start + count):
            add_active(db, f"http://example.com/concurrent/{i}.html", START)
    except Exception as e:
        results.put((name, "error", repr(e)))
        raise
    finally:
        db.dispose()
    results.put((name, "ok", count))


def publisher_loop(
    data_dir: str,
    url: str,
    done: multiprocessing.synchronize.Event,
    results: Results[tuple[str, str, object]],
    name: str,
) -> None:
    """Publish in a tight loop until the adders are done and nothing is left."""
    db = Database(url)
    publisher = Publisher(db, "main", keys_dir_of(Path(data_dir)), clock=lambda: START)
    cut: list[int] = []
    try:
        while True:
            # Read the flag before publishing: once every adder has committed,
            # a publish that cuts nothing proves nothing is left.
            finished = done.is_set()
            result = publisher.publish_once()
            cut.extend(result.versions)
            if finished and not result.versions:
                break
    except Exception as e:
        results.put((name, "error", repr(e)))
        raise
    finally:
        db.dispose()
    results.put((name, "ok", cut))
