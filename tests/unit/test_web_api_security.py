"""The API's security, on SQLite and PostgreSQL: another subscriber's data out of reach by id or
number guessing, stale, stolen, revoked and expired tokens, expired and reused codes, and the sixth
wrong code refused across two cores (two engines, two apps: two serving processes' worth) on one
database, in turn and at once."""
import threading
from datetime import timedelta

from billing import signin
from billing.core import Core
from tests.unit.api_support import Api, code_in_outbox, error_of
from tests.unit.packs_credit_scenarios import POST, PRE, open_postpaid, open_prepaid

OTHER = "+994502223344"
THIRD = "+994503334455"


def two_lines(core):
    open_prepaid(core, balance="10.00")
    open_prepaid(core, msisdn=OTHER, balance="20.00")
    return Api(core).signed_in(PRE), Api(core).signed_in(OTHER)


def test_every_answer_is_the_token_owners_whatever_the_request_names(any_core):
    mine, _theirs = two_lines(any_core)
    assert mine.get("/balance", query_string={"msisdn": OTHER}).get_json()["balance"] == "10.0000"
    assert mine.get("/history", query_string={"msisdn": OTHER}).status_code == 400  # unknown query fields refused
    assert error_of(mine.patch("/settings", {"language": "ru", "msisdn": OTHER})) == (400, "invalid-input")
    assert mine.get("/settings").get_json()["language"] == "az"
    assert error_of(mine.post("/packs", {"number": 1, "msisdn": OTHER})) == (400, "invalid-input")
    assert Api(any_core).signed_in(OTHER).get("/balance").get_json()["balance"] == "20.0000"


def test_another_lines_figures_are_refused_alike_whether_it_exists_or_not(any_core):
    mine, _ = two_lines(any_core)
    open_postpaid(any_core)
    for guess in (OTHER, POST, "+994509998877", "0551234567", "not-a-number", "1"):
        answer = mine.get(f"/shared/{guess}")
        assert error_of(answer) == (403, "access-denied"), guess
        assert answer.get_json()["error"]["message"] == "Bu nömrənin balansına baxmaq icazəniz yoxdur."


def test_revoking_touches_only_the_signed_in_owners_grants(any_core):
    open_postpaid(any_core)
    open_postpaid(any_core, msisdn="+994552223344")
    owner, other_owner = Api(any_core).signed_in(POST), Api(any_core).signed_in("+994552223344")
    assert owner.post("/grants", {"msisdn": THIRD}).get_json()["changed"] is True
    assert other_owner.delete(f"/grants/{THIRD}").get_json() == {"msisdn": THIRD, "changed": False}
    assert owner.get("/grants").get_json() == {"grantees": [THIRD]}


def test_one_lines_idempotency_key_never_answers_anothers_request(any_core):
    mine, theirs = two_lines(any_core)
    key = {"Idempotency-Key": "same-key"}
    assert mine.post("/packs", {"number": 1}, headers=key).get_json()["duplicate"] is False
    assert theirs.post("/packs", {"number": 1}, headers=key).get_json()["duplicate"] is False
    assert theirs.get("/balance").get_json()["balance"] == "17.0000"


def test_guessed_stolen_and_other_kinds_of_secrets_are_refused(any_core):
    open_prepaid(any_core)
    api = Api(any_core)
    request_id = api.ask_code(PRE)
    with any_core.uow() as uow:
        page = signin.verify_code(uow, request_id, PRE, code_in_outbox(any_core, request_id), "page")
    token = api.signed_in(PRE).token
    digest = signin.secret_digest(token)  # what a copy of the database would give a thief
    for header in (f"Bearer {digest}", f"Bearer {page.secret}", f"Bearer {token[:-1]}", "Bearer", token,
                   f"Basic {token}", f"Bearer {'A' * 43}", ""):
        answer = api.get("/balance", headers={"Authorization": header})
        assert error_of(answer) == (401, "not-signed-in"), header
    assert api.get("/balance", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_revoked_and_an_expired_token_are_refused(any_core, clock):
    open_prepaid(any_core)
    first, second = Api(any_core).signed_in(PRE), Api(any_core).signed_in(PRE)
    assert first.post("/signout").get_json() == {"signed_out": True}
    assert error_of(first.get("/balance")) == (401, "not-signed-in")
    assert error_of(first.post("/signout")) == (401, "not-signed-in")
    clock.advance(timedelta(days=30))
    assert error_of(second.get("/balance")) == (401, "not-signed-in")


def test_a_code_is_used_once_and_only_for_its_number(any_core):
    open_prepaid(any_core)
    open_prepaid(any_core, msisdn=OTHER)
    api = Api(any_core)
    request_id = api.ask_code(PRE)
    code = code_in_outbox(any_core, request_id)
    assert error_of(api.post("/signin/verify", {"request_id": request_id, "msisdn": OTHER, "code": code})) == (
        400, "code-expired")
    assert api.post("/signin/verify", {"request_id": request_id, "msisdn": PRE, "code": code}).status_code == 200
    assert error_of(api.post("/signin/verify", {"request_id": request_id, "msisdn": PRE, "code": code})) == (
        400, "code-expired")


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_the_sixth_wrong_code_is_refused_across_two_cores_taking_turns(any_core, clock):
    open_prepaid(any_core)
    second_core = Core(any_core.db_url, clock=clock)
    try:
        apps = [Api(any_core), Api(second_core)]
        request_id = apps[0].ask_code(PRE)
        code = code_in_outbox(any_core, request_id)
        answers = [error_of(apps[i % 2].post("/signin/verify", {"request_id": request_id, "msisdn": PRE,
                                                                 "code": _wrong(code)})) for i in range(5)]
        assert answers == [(400, "wrong-code")] * 5
        sixth = apps[1].post("/signin/verify", {"request_id": request_id, "msisdn": PRE, "code": code})
        assert error_of(sixth) == (429, "too-many-wrong-codes")
    finally:
        second_core.dispose()


def test_wrong_codes_sent_at_once_to_two_cores_get_exactly_five_tries(any_core, clock):
    open_prepaid(any_core)
    second_core = Core(any_core.db_url, clock=clock)
    try:
        apps = [Api(any_core), Api(second_core)]
        request_id = apps[0].ask_code(PRE)
        code = code_in_outbox(any_core, request_id)
        # A client per thread (Flask's test client is not shared), each built here: Werkzeug compiles
        # its URL rules with ast.parse, which CPython 3.11.7 does not survive from several threads.
        clients = [Api(apps[i % 2].core) for i in range(12)]
        answers, start = [], threading.Barrier(12, timeout=60)

        def guess(client):
            start.wait()
            answers.append(error_of(client.post("/signin/verify", {"request_id": request_id, "msisdn": PRE,
                                                                    "code": _wrong(code)})))

        threads = [threading.Thread(target=guess, args=(client,), daemon=True) for client in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
            assert not t.is_alive(), "a guess did not finish"
        assert sorted(answers) == [(400, "wrong-code")] * 5 + [(429, "too-many-wrong-codes")] * 7
        right = apps[0].post("/signin/verify", {"request_id": request_id, "msisdn": PRE, "code": code})
        assert error_of(right) == (429, "too-many-wrong-codes")
    finally:
        second_core.dispose()


def test_the_hourly_code_limit_holds_across_two_cores(any_core, clock):
    second_core = Core(any_core.db_url, clock=clock)
    try:
        apps = [Api(any_core), Api(second_core)]
        for i in range(5):
            apps[i % 2].ask_code(PRE)
        assert error_of(apps[1].post("/signin/code", {"msisdn": PRE})) == (429, "too-many-codes")
        assert error_of(apps[0].post("/signin/code", {"msisdn": PRE})) == (429, "too-many-codes")
    finally:
        second_core.dispose()
