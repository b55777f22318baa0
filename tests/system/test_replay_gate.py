"""Real traffic replayed through a candidate knowledge base or model counts what would change, and a gated reload
or deploy is refused (409, audited, nothing changed) until forced, on real servers, Redis and command line.

Two server processes, one per module fixture: one serves a small FAQ with the demo model (the knowledge-base
checks and reloads), the other a second model (the model checks and deploys). Each gets its customer traffic
through `POST /chat` once, when it starts; the statistics' `asked` lists keep it, and every replay below runs it
again. The commands run in this process (typer's CliRunner) with the server's own settings in the environment, so
the conversation tests they run locally on a candidate use the same model and knowledge base as the server.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.replay import (
    Server,
    frontdesk,
    running_server,
    server_env,
    use_settings,
    write_faq,
)

pytestmark = pytest.mark.slow


def entry(id_: str, question: str, answer: str, alternates: list[str]) -> dict:
    return {"id": id_, "question": question, "answer": answer, "alternates": alternates}


# Alternates in the form the statistics keep (lower case, no end punctuation), so the replayed text is the very
# text the live customer's answer was chosen for.
GIFT_CARDS = entry("gift-cards", "Do you sell gift cards?", "Yes: gift cards from $10 to $500, online and in store.",
                   ["can i buy a gift card", "do you have gift vouchers", "gift card for a friend",
                    "how do gift certificates work"])
STORE_HOURS = entry("store-hours", "When is the store open?", "Monday to Saturday, 9 am to 6 pm.",
                    ["what are your opening hours", "what time do you close", "are you open on sundays",
                     "store opening times"])
RETURNS = entry("returns", "How do I return an item?", "Start a return within 30 days from your account.",
                ["can i send something back", "what is your return policy", "how do i return a product"])
WARRANTY = entry("warranty", "What does the warranty cover?", "Two years on parts and labour.",
                 ["is my product under warranty", "how long is the guarantee", "warranty repair for my lamp"])
SERVING_FAQ = [GIFT_CARDS, STORE_HOURS, RETURNS, WARRANTY]
# The candidate: gift-cards renamed (the same question, answer and alternates), store-hours removed.
CANDIDATE_FAQ = [{**GIFT_CARDS, "id": "gift-vouchers"}, RETURNS, WARRANTY]

OUT_OF_SCOPE = "what is the capital of france"
# The traffic: each gift-card alternate, the first two twice; each store-hours alternate once; one question no
# entry covers. Commands (`/start`, sent while waiting for the bot) are never replayed.
KB_TRAFFIC = [*GIFT_CARDS["alternates"], *GIFT_CARDS["alternates"][:2], *STORE_HOURS["alternates"], OUT_OF_SCOPE]

MODEL_TRAFFIC = ["cancel my order", "i want to cancel", "change my delivery address", "hello",
                 "can i buy a gift card", "what is your return policy"]

# Holds for the serving FAQ (its gift-cards entry answers its own alternate), never for the candidate (no entry is
# called gift-cards there).
GIFT_CARDS_TEST = """\
- name: gift cards answered by their entry
  steps:
    - user: can i buy a gift card
      expect: {answer: gift-cards}
"""
# Impossible for the tiny model, whose intents are order_status, refund, greet and oos.
CANCEL_TEST = """\
- name: cancelling is understood
  steps:
    - user: cancel my order
      expect: {intent: cancel_order}
"""

PROBLEM_LINE = re.compile(r"^(?P<file>\S+\.ya?ml):(?P<line>\d+): (?P<message>.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Traffic:
    server: Server
    answered: dict[str, list[str]]  # FAQ entry id -> the texts (one per message) it answered live
    sent: int

    def by(self, entry_id: str) -> int:
        return len(self.answered.get(entry_id, []))


def send(server: Server, texts: list[str]) -> dict[str, list[str]]:
    answered: dict[str, list[str]] = {}
    for text in texts:
        found = server.answered_by(text)
        if found is not None:
            answered.setdefault(found, []).append(text)
    return answered


def json_out(result) -> dict:
    """The one JSON object a `--json` command wrote on stdout (its progress and notes went to stderr)."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def flat(text: str) -> str:
    """`text` on one line, single-spaced: the human reports wrap at the terminal's width."""
    return " ".join(text.split())


def actions(server: Server) -> Counter[str]:
    return Counter(e["action"] for e in server.audit())


@pytest.fixture(scope="module")
def redis_for_module(redis_server) -> str:
    # `redis_url` is per test; the session's Redis server is not. Each server below has a prefix of its own.
    return f"unix://{redis_server.socket_file}"


@pytest.fixture(scope="module")
def kb_traffic(demo_model, redis_for_module, tmp_path_factory) -> Traffic:
    """A server answering from SERVING_FAQ with the demo model, after KB_TRAFFIC came through /chat."""
    root = tmp_path_factory.mktemp("replay-kb")
    env = server_env(model=demo_model, kb=write_faq(root / "kb", SERVING_FAQ), redis_url=redis_for_module,
                     home=root / "home")
    with running_server(env, root / "server.log") as server:
        answered = send(server, KB_TRAFFIC)
        # The premise of every test below: the FAQ answers its own alternates, each from its own entry.
        assert set(answered.get("gift-cards", [])) == set(GIFT_CARDS["alternates"]), answered
        assert set(answered.get("store-hours", [])) <= set(STORE_HOURS["alternates"]), answered
        assert len(answered.get("store-hours", [])) >= 2, answered
        yield Traffic(server, answered, len(KB_TRAFFIC))


@pytest.fixture(scope="module")
def model_traffic(second_model, redis_for_module, tmp_path_factory) -> Traffic:
    """A server deciding with the second model (SERVING_FAQ beside it), after MODEL_TRAFFIC came through /chat."""
    root = tmp_path_factory.mktemp("replay-model")
    env = server_env(model=second_model, kb=write_faq(root / "kb", SERVING_FAQ), redis_url=redis_for_module,
                     home=root / "home")
    with running_server(env, root / "server.log") as server:
        yield Traffic(server, send(server, MODEL_TRAFFIC), len(MODEL_TRAFFIC))


# ------------------------------------------------------------------------------------------- knowledge base
def test_kb_check_replay_counts_the_answers_a_renamed_and_a_removed_entry_change(kb_traffic, tmp_path, monkeypatch):
    server = kb_traffic.server
    use_settings(monkeypatch, server)
    serving = server.faq_version()
    candidate = write_faq(tmp_path / "candidate", CANDIDATE_FAQ)

    body = json_out(frontdesk("kb", "check", "--candidate", candidate, "--replay", "--json", "--url", server.url))
    replay = body["replay"]
    gifts, hours = kb_traffic.by("gift-cards"), kb_traffic.by("store-hours")
    # Every message sent is replayed, as often as it came; the `/start` probes are not (no model decides them).
    assert replay["messages"] == kb_traffic.sent == len(KB_TRAFFIC)
    assert replay["texts"] == len(set(KB_TRAFFIC))
    assert body["serving"]["version"] == serving and body["candidate"]["version"] != serving
    assert body["candidate"]["entries"] == len(CANDIDATE_FAQ) and body["tests"] is None  # no tests configured
    changes = replay["changes"]
    assert set(changes) == {"answer_to_decline", "decline_to_answer", "answer_changed", "escalation_added",
                            "escalation_removed", "suggestions_changed"}
    # The renamed entry answers the same questions under its new id: each of its messages is a changed answer.
    assert changes["answer_changed"] >= gifts, (replay, kb_traffic.answered)
    renamed = [s for s in replay["samples"].get("answer_changed", [])
               if s["serving"] == "answer gift-cards" and s["candidate"] == "answer gift-vouchers"]
    assert renamed, replay["samples"]
    assert all(s["text"] in GIFT_CARDS["alternates"] for s in renamed)
    # The twice-asked texts are counted twice, and shown first (most frequent first).
    assert {s["text"]: s["count"] for s in renamed}.get(GIFT_CARDS["alternates"][0]) == 2
    # The removed entry's messages change too: to another answer or to a decline, never unchanged. Only these can
    # change (the model is the same, so escalations and every other entry's decisions stay).
    assert changes["answer_changed"] + changes["answer_to_decline"] >= gifts + hours
    assert changes["escalation_added"] == changes["escalation_removed"] == 0
    assert replay["changed"] == sum(changes.values()) >= gifts + hours
    assert replay["changed_share"] == round(replay["changed"] / replay["messages"], 4)
    for sample in replay["samples"].get("answer_to_decline", []):
        assert sample["serving"] in ("answer gift-cards", "answer store-hours"), sample
    for sample in [s for samples in replay["samples"].values() for s in samples]:
        assert sample["candidate"] not in ("answer gift-cards", "answer store-hours"), sample
    # A check changes nothing.
    assert server.faq_version() == serving

    # Without --replay: contents and calibration only, no traffic read.
    plain = json_out(frontdesk("kb", "check", "--candidate", candidate, "--json", "--url", server.url))
    assert plain["replay"] is None and plain["tests"] is None
    assert plain["candidate"]["version"] == body["candidate"]["version"]


def test_kb_check_of_an_invalid_candidate_names_each_problem_and_changes_nothing(kb_traffic, tmp_path,
                                                                                   monkeypatch):
    server = kb_traffic.server
    use_settings(monkeypatch, server)
    serving, audited = server.faq_version(), actions(server)
    broken = write_faq(tmp_path / "broken", [{"id": "gift-cards", "question": "", "alternates": ["gift"]},
                                              RETURNS, {**WARRANTY, "id": "returns"}])
    (broken / "unreadable.yaml").write_text("- id: [unclosed\n")

    refused = frontdesk("kb", "check", "--candidate", broken, "--replay", "--json", "--url", server.url)
    assert refused.exit_code == 1, refused.output
    problems = {(Path(m["file"]).name, m["message"].split(" (")[0]) for m in PROBLEM_LINE.finditer(refused.stderr)}
    assert ("faq.yaml", "missing answer") in problems, refused.stderr
    assert ("faq.yaml", "empty or missing question") in problems, refused.stderr
    assert any(name == "faq.yaml" and message.startswith("duplicate id 'returns'") for name, message in problems)
    assert any(name == "unreadable.yaml" for name, _ in problems), refused.stderr
    assert "nothing changed" in refused.output
    assert refused.stdout == ""  # no report on stdout: nothing was compared
    assert server.faq_version() == serving
    # Nothing is audited for a refused check: no "faq.check", and no reload of any kind.
    assert actions(server) == audited


def test_gated_kb_reload_is_refused_past_the_gate_then_forced(kb_traffic, tmp_path, monkeypatch):
    server = kb_traffic.server
    use_settings(monkeypatch, server)
    old = server.faq_version()
    tests = tmp_path / "conversations.yaml"
    tests.write_text(GIFT_CARDS_TEST)

    # The configured FAQ unchanged: the tests pass on it and no replayed decision changes, so the gate lets it by.
    passed = frontdesk("kb", "reload", "--gate", "--max-changed", "0.05", "--tests", tests, "--url", server.url)
    assert passed.exit_code == 0, passed.output
    shown = flat(passed.output)
    assert "PASS gift cards answered by their entry" in shown and "1 passed, 0 failed" in shown, shown
    assert f"unchanged, serving version {old}" in shown
    assert server.faq_version() == old

    write_faq(server.kb, CANDIDATE_FAQ)  # the configured source is now the candidate

    # Over HTTP: 409 with the reason, the gate's verdict and the replay behind it.
    before = actions(server)
    answer = server.admin("POST", "/admin/faq/reload", {"gate": {"max_changed_share": 0.05}})
    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert detail["gate"]["passed"] is False and detail["gate"]["max_changed_share"] == 0.05
    assert len(detail["gate"]["reasons"]) == 1 and "would get another decision" in detail["gate"]["reasons"][0]
    assert detail["replay"]["messages"] == kb_traffic.sent and detail["replay"]["changed_share"] > 0.05
    assert "the gate refused it" in detail["reason"] and "nothing changed" in detail["reason"]

    # From the command line: too many decisions would change; refused, the reason and the replay shown.
    refused = frontdesk("kb", "reload", "--gate", "--max-changed", "0.05", "--url", server.url)
    assert refused.exit_code == 1, refused.output
    shown = flat(refused.output)
    reason = shown.split("server answered 409:")[-1]
    assert "the gate refused it" in reason and "at most 5.0% may" in reason, shown
    assert re.search(r"\d+ of \d+ replayed messages \([\d.]+%\) would get another decision", reason), reason
    assert "conversation test" not in reason  # none ran (none named, none configured), so none failed
    assert "'can i buy a gift card' x2: answer gift-cards -> answer gift-vouchers" in shown  # what would change
    assert server.faq_version() == old
    after = actions(server)
    assert after["faq.reload.refused"] == before["faq.reload.refused"] + 2  # the HTTP call's and the command's
    assert after["faq.reload"] == before["faq.reload"]  # no reload happened
    refusal = next(e for e in server.audit() if e["action"] == "faq.reload.refused")
    assert "would get another decision" in refusal["target"] and refusal["actor"]
    # Still the old entries answering customers.
    assert server.answered_by(GIFT_CARDS["alternates"][0]) == "gift-cards"

    # The conversation tests fail on the candidate: refused for that alone, however many decisions may change.
    failed = frontdesk("kb", "reload", "--gate", "--max-changed", "1", "--tests", tests, "--url", server.url)
    assert failed.exit_code == 1, failed.output
    shown = flat(failed.output)
    # They ran locally on the candidate (the configured source, rewritten): its renamed entry answered.
    assert "FAIL gift cards answered by their entry" in shown and "got answered gift-vouchers" in shown, shown
    reason = shown.split("server answered 409:")[-1]
    assert "1 conversation test(s) failed: gift cards answered by their entry" in reason, shown
    assert "replayed messages" not in reason  # the replay was within the allowed share
    assert server.faq_version() == old
    assert actions(server)["faq.reload.refused"] == after["faq.reload.refused"] + 1

    # Forced: reloaded all the same, and audited as forced beside the reload itself.
    before = actions(server)
    forced = frontdesk("kb", "reload", "--gate", "--force", "--max-changed", "0.05", "--url", server.url)
    assert forced.exit_code == 0, forced.output
    new = server.faq_version()
    assert new != old and f"now serving version {new}" in flat(forced.output)
    status = server.admin("GET", "/admin/faq").json()
    assert status["version"]["entries"] == len(CANDIDATE_FAQ)
    after = actions(server)
    assert after["faq.reload.forced"] == before["faq.reload.forced"] + 1
    assert after["faq.reload"] == before["faq.reload"] + 1
    assert after["faq.reload.refused"] == before["faq.reload.refused"]
    forced_entry = next(e for e in server.audit() if e["action"] == "faq.reload.forced")
    assert forced_entry["target"].startswith(new) and "would get another decision" in forced_entry["target"]
    # The candidate serves now: the renamed entry answers its customers.
    assert server.answered_by(GIFT_CARDS["alternates"][0]) == "gift-vouchers"


# ------------------------------------------------------------------------------------------- model
def test_model_check_replays_the_traffic_and_runs_the_tests_on_the_candidate(model_traffic, tiny_model, tmp_path,
                                                                             monkeypatch):
    server = model_traffic.server
    use_settings(monkeypatch, server)
    tests = tmp_path / "conversations.yaml"
    tests.write_text(CANCEL_TEST)
    serving = server.model_version()
    # The test holds for the serving model (run locally with the server's settings): only the candidate fails it.
    holds = frontdesk("test", tests)
    assert holds.exit_code == 0 and "PASS cancelling is understood" in flat(holds.output), holds.output

    body = json_out(frontdesk("model", "check", "--candidate", tiny_model, "--replay", "--tests", tests, "--json",
                              "--url", server.url))
    replay = body["replay"]
    assert replay["messages"] == model_traffic.sent == len(MODEL_TRAFFIC)
    assert replay["texts"] == len(set(MODEL_TRAFFIC)) and replay["days"] == 7
    assert replay["changed"] == sum(replay["changes"].values()) <= replay["messages"]
    assert body["serving"] == serving and body["candidate"] != serving
    assert body["tests"]["failed"] == 1 and body["tests"]["passed"] == 0
    assert body["tests"]["failures"][0].startswith("cancelling is understood (")
    assert server.model_version() == serving  # a check deploys nothing

    # --days bounds the days read; today's traffic is in any of them.
    one_day = json_out(frontdesk("model", "check", "--candidate", tiny_model, "--replay", "--days", "1", "--json",
                                 "--url", server.url))
    assert one_day["replay"]["days"] == 1 and one_day["replay"]["messages"] == len(MODEL_TRAFFIC)
    assert one_day["tests"] is None  # no tests named, none configured


def test_gated_model_deploy_is_refused_on_failing_tests_then_forced(model_traffic, tiny_model, tmp_path,
                                                                   monkeypatch):
    from nlu.versions import model_version

    server = model_traffic.server
    use_settings(monkeypatch, server)
    tests = tmp_path / "conversations.yaml"
    tests.write_text(CANCEL_TEST)
    old, tiny = server.model_version(), model_version(tiny_model)
    assert old != tiny

    # Over HTTP, with the tests' results as the command line sends them: 409, the verdict and the replay.
    before = actions(server)
    answer = server.admin("POST", "/admin/model/deploy", {"path": str(tiny_model), "gate": {
        "max_changed_share": 1, "tests": {"passed": 2, "failed": 1, "failures": ["refunds (t.yaml:9, step 1)"]}}})
    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert detail["gate"] == {"passed": False, "max_changed_share": 1.0,
                              "reasons": ["1 conversation test(s) failed: refunds (t.yaml:9, step 1)"]}
    assert detail["replay"]["messages"] == model_traffic.sent
    assert server.model_version() == old

    # From the command line, any share of changed decisions allowed: only the failing test can refuse it.
    refused = frontdesk("model", "deploy", tiny_model, "--gate", "--max-changed", "1", "--tests", tests,
                        "--url", server.url)
    assert refused.exit_code == 1, refused.output
    shown = flat(refused.output)
    assert "FAIL cancelling is understood" in shown and "expected intent: cancel_order" in shown, shown
    reason = shown.split("server answered 409:")[-1]
    assert "1 conversation test(s) failed: cancelling is understood" in reason, shown
    assert "replayed messages" not in reason
    assert f"replayed {len(MODEL_TRAFFIC)} message(s)" in shown  # the replay behind the refusal
    assert server.model_version() == old
    after = actions(server)
    assert after["model.deploy.refused"] == before["model.deploy.refused"] + 2  # the HTTP call's and the command's
    assert after["model.deploy"] == before["model.deploy"]
    target = next(e for e in server.audit() if e["action"] == "model.deploy.refused")["target"]
    assert target.startswith(tiny) and "conversation test(s) failed" in target

    # Forced past the same failing test: deployed, audited as forced and as a deploy.
    forced = frontdesk("model", "deploy", tiny_model, "--gate", "--force", "--max-changed", "1", "--tests", tests,
                       "--url", server.url)
    assert forced.exit_code == 0, forced.output
    shown = flat(forced.output)
    assert f"deployed {tiny}" in shown and "0 passed, 1 failed" in shown, shown
    status = server.admin("GET", "/admin/model").json()
    assert status["version"] == tiny and status["previous"] == old
    audited = actions(server)
    assert audited["model.deploy.forced"] == after["model.deploy.forced"] + 1
    assert audited["model.deploy"] == after["model.deploy"] + 1
    assert audited["model.deploy.refused"] == after["model.deploy.refused"]
