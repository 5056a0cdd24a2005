"""schemathesis hooks for scripts/fuzz-api.sh: rules of the API that OpenAPI cannot state."""

import schemathesis


@schemathesis.hook
def map_case(context, case):
    """POST /v1/jobs takes its idempotency key from the `Idempotency-Key` header or the body's
    `idempotencyKey`; given both, they must be the same key (else 422). A rule across two parts of
    a request is beyond OpenAPI, so a schema-valid case that names two keys keeps only the
    header's. Cases meant to be invalid are left alone (a mismatch is refused either way)."""
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if (
        positive
        and case.operation.method.upper() == "POST"
        and case.operation.path == "/v1/jobs"
        and isinstance(case.body, dict)
        and "idempotencyKey" in case.body
        and any(name.lower() == "idempotency-key" for name in (case.headers or {}))
    ):
        del case.body["idempotencyKey"]
    return short_long_polls(case)


def short_long_polls(case):
    """`POST /v1/worker/lease` waits up to `waitMs` (30 s when absent or null) for a job:
    schema-valid waits are cut to 200 ms, so that the fuzz is not a minute per case. Invalid ones
    stay."""
    if (
        case.operation.method.upper() == "POST"
        and case.operation.path == "/v1/worker/lease"
        and isinstance(case.body, dict)
    ):
        wait = case.body.get("waitMs")
        if wait is None:
            case.body["waitMs"] = 0
        elif isinstance(wait, (int, float)) and not isinstance(wait, bool) and 0 <= wait <= 60000:
            case.body["waitMs"] = min(wait, 200)
    return case
