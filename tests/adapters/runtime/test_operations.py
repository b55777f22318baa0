"""What an operator sees: readiness while loading, metrics that move, JSON logs without personal data."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from adapters.runtime.logs import mask
from tests.adapters.runtime.test_serve import frontdesk
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.serverutil import ROOT, free_port, stop_server, wait_ready

EMAIL = "jane.doe+orders@example.com"
CARD = "4111 1111 1111 1111"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_mask_hides_personal_data_and_tokens_but_keeps_ordinary_numbers():
    line = (f"from {EMAIL} card {CARD} or 4111-1111-1111-1111, phone +44 20 7946 0958, order LH-48213, "
            "on 2026-11-28 10:00, token xoxb-12345-67890-abcdef, url /bot123456:AAEhBP0av28_r3qzZ9sd-Rnq1Hd2WW0KJ3c/x")
    masked = mask(line)
    for secret in (EMAIL, CARD, "4111-1111-1111-1111", "7946 0958", "xoxb-12345", "AAEhBP0av28"):
        assert secret not in masked
    assert "LH-48213" in masked and "2026-11-28 10:00" in masked
    assert masked.count("[card]") == 2 and "[email]" in masked and "[phone]" in masked


@pytest.mark.slow
def test_readiness_metrics_and_logs_of_a_serving_process(demo_model, redis_url, redis_prefix, tmp_path):
    env = {"FRONTDESK_MODEL_DIR": str(demo_model), "FRONTDESK_KB": str(ROOT / "knowledge" / "demo"),
           "FRONTDESK_HOME": str(tmp_path / "h"), "REDIS_URL": redis_url, "FRONTDESK_REDIS_PREFIX": redis_prefix,
           "FRONTDESK_DEVICE": "cpu", "FRONTDESK_LOG_LEVEL": "DEBUG",
           "FRONTDESK_ADMIN_TOKEN": "ops-token-0123456789abcdef0123456789ab", "FRONTDESK_CHAT_TOKEN": CHAT_TOKEN}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = frontdesk(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
        try:
            early = None
            deadline = time.monotonic() + 120
            while early is None and time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        early = httpx.get(f"{url}/readyz", timeout=2)
                except httpx.HTTPError:
                    time.sleep(0.05)
            # Alive at once, ready only once model and index have loaded (that takes seconds here).
            assert early is not None and early.status_code == 503
            assert set(early.json()["missing"]) & {"model", "index"}
            wait_ready(url, process)

            before = httpx.get(f"{url}/metrics").text
            for text in ["hello", f"my email is {EMAIL}, card {CARD}", "what is the meaning of life?", "/human"]:
                reply = httpx.post(f"{url}/chat", json={"sender": EMAIL, "message": text}, headers=CHAT_AUTH,
                                   timeout=30)
                assert reply.status_code == 200, reply.text
            after = httpx.get(f"{url}/metrics").text
        finally:
            stop_server(process)

    assert metric(after, "frontdesk_messages_total", channel="rest") - metric(
        before, "frontdesk_messages_total", channel="rest") == 4
    assert metric(after, "frontdesk_escalations_total", reason="asked_for_human", channel="rest") == 1
    assert metric(after, "frontdesk_intents_total", intent="greet") >= 1
    assert metric(after, "frontdesk_http_request_duration_seconds_count", route="/chat", method="POST",
                  status="200") == 4
    assert metric(after, "frontdesk_nlu_batch_size_count") > metric(before, "frontdesk_nlu_batch_size_count")

    output = log_path.read_text()
    assert EMAIL not in output and CARD not in output and "4111" not in output
    handled = [json.loads(line) for line in output.splitlines()
               if line.startswith("{") and '"message handled"' in line]
    assert len(handled) == 4
    assert all(entry["conversation"] == "rest:[email]" and entry["channel"] == "rest" for entry in handled)
