"""Makes schemathesis send Idempotency-Key the way a correct client does.

An Idempotency-Key names one request: the server answers a repeat of that
request with the first result, and the same key on another method, path or
body with 422 `idempotency_key_reused` (DESIGN §3). schemathesis draws header
values from the schema independently for every case, so the few values it
favours (the example, the shortest string) land on unrelated requests and are
rightly refused. A real client makes a fresh key per request; so does this
hook, for every key the schema allows. Keys the schema forbids are sent as
drawn, so the server's refusal of them is still tested. Replays with the same
key are tested by the project's own suite (command-service/tests/api).
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[!-~]{1,200}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and VALID_KEY.match(str(headers[name])):
            headers[name] = f"st-{uuid.uuid4()}"
