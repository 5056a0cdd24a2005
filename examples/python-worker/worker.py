"""A jobwire worker in Python over HTTP, standard library only: counts the words of `py.wordcount` jobs.

Env: JOBWIRE_URL (default http://127.0.0.1:8080), JOBWIRE_WORKER_TOKEN (`jobwire token --worker --type py.wordcount`).
Its jobs take milliseconds, so it leases each for a minute and sends no heartbeats; a slow handler would
renew its lease from a thread every leaseMs/3 (POST /v1/worker/jobs/{id}/heartbeat). Ctrl-C stops it.
"""

import json
import os
import random
import sys
import time
import urllib.error
import urllib.request

URL = os.environ.get("JOBWIRE_URL", "http://127.0.0.1:8080").rstrip("/")
TOKEN = os.environ.get("JOBWIRE_WORKER_TOKEN") or sys.exit("set JOBWIRE_WORKER_TOKEN (jobwire token --worker ...)")


def post(path, body):
    """POSTs JSON with the worker token; returns the answer's JSON (None for 204)."""
    request = urllib.request.Request(URL + path, json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=90) as response:  # longer than the lease poll's wait
        text = response.read()
    return json.loads(text) if text else None


def word_count(job, report):
    payload = job["payload"]
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str):
        raise ValueError('payload must be {"text": "..."}')
    report({"percent": 50})
    return {"words": len(text.split())}


def run(job):
    jobs, lease = f"/v1/worker/jobs/{job['id']}", {"leaseToken": job["leaseToken"]}
    try:
        result = word_count(job, lambda progress: post(f"{jobs}/progress", {**lease, "progress": progress}))
        post(f"{jobs}/complete", {**lease, "result": result})
    except ValueError as error:  # a bad payload: retrying cannot help
        post(f"{jobs}/fail", {**lease, "error": str(error), "retryable": False})
    except urllib.error.HTTPError as error:  # 409: the lease ran out or the job was cancelled
        print(f"job {job['id']}: {error.code} {error.read().decode()}", file=sys.stderr)


def main():
    failures = 0
    while True:
        try:
            for job in post("/v1/worker/lease", {"types": ["py.wordcount"], "waitMs": 30000, "leaseMs": 60000}):
                run(job)
            failures = 0
        except urllib.error.HTTPError as error:
            if error.code in (401, 403, 422):  # the token or the request is wrong: retrying cannot help
                sys.exit(f"jobwire refused this worker: {error.code} {error.read().decode()}")
            failures += 1
            print(f"jobwire answered {error.code}; trying again", file=sys.stderr)
        except OSError as error:  # unreachable: back off with full jitter, up to 30 s
            failures += 1
            print(f"cannot reach {URL}: {error}; trying again", file=sys.stderr)
        if failures:
            time.sleep(random.uniform(0, min(30, 0.5 * 2**failures)))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # a job in hand is leased again once its lease runs out
        print("stopped", file=sys.stderr)
