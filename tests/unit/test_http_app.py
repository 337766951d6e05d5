"""The HTTP app as a whole: health, and requests no gateway should ever send."""
from selfcare.config import Settings
from selfcare.http import create_app

SETTINGS = Settings(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token="token",
                    twilio_public_url=None, kannel_secret="secret", kannel_allow=())


def test_health_answers_when_the_database_does(core):
    answer = create_app(core, SETTINGS).test_client().get("/health")
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}


def test_an_over_long_body_is_refused_before_any_handler_runs(core):
    client = create_app(core, SETTINGS).test_client()
    huge = {"sessionId": "s", "serviceCode": "*650#", "phoneNumber": "+994551234567", "text": "1" * 100_000}
    for path in ("/ussd", "/sms/kannel", "/sms/twilio"):
        assert client.post(path, data=huge).status_code == 413
    with core.uow() as uow:  # nothing was written
        from billing.models import Operation

        assert uow.session.query(Operation).count() == 0


def test_unknown_paths_and_methods_get_http_errors_not_tracebacks(core):
    client = create_app(core, SETTINGS).test_client()
    assert client.get("/nope").status_code == 404
    assert client.get("/ussd").status_code == 405
