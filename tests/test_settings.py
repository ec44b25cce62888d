"""Settings come from the environment and refuse unsafe or malformed values loudly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}}
    clean.update(env)
    code = (
        "import django, json; from django.conf import settings; django.setup();"
        "print(json.dumps({'debug': settings.DEBUG, 'engine': settings.DATABASES['default']['ENGINE'],"
        " 'eager': settings.CELERY_TASK_ALWAYS_EAGER, 'margin': str(settings.CSM_GROSS_MARGIN),"
        " 'currency': settings.CSM_CURRENCY, 'acks_late': settings.CELERY_TASK_ACKS_LATE}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "csm.settings"},
        capture_output=True,
        text=True,
    )


def test_embedded_defaults():
    result = load_settings(CELERY_BROKER_URL="")
    assert result.returncode == 0, result.stderr
    assert '"engine": "django.db.backends.sqlite3"' in result.stdout
    assert '"eager": true' in result.stdout
    assert '"margin": "0.8"' in result.stdout
    assert '"currency": "USD"' in result.stdout
    assert '"acks_late": true' in result.stdout


def test_production_needs_a_secret_key():
    result = load_settings(DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
    ok = load_settings(DEBUG="0", SECRET_KEY="x" * 50, ALLOWED_HOSTS="csm.example.com")
    assert ok.returncode == 0, ok.stderr
    assert '"debug": false' in ok.stdout


def test_broker_turns_off_eager_mode():
    result = load_settings(CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert '"eager": false' in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"CSM_GROSS_MARGIN": "abc"}, "CSM_GROSS_MARGIN='abc' is not a number"),
        ({"CSM_GROSS_MARGIN": "1.5"}, "must be greater than 0 and at most 1"),
        ({"CSM_CURRENCY": "euro"}, "three-letter ISO 4217 code"),
        ({"CACHE_URL": "memcached://x"}, "must be a redis:// URL"),
        ({"CSM_API_RATE_PER_MINUTE": "0"}, "must be a whole number, 1 or more"),
    ],
)
def test_malformed_values_fail_loudly(env, message):
    result = load_settings(**env)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_cache_url_shares_the_throttle_counts_through_redis():
    code = (
        "import django; from django.conf import settings; django.setup();"
        "print(settings.CACHES['default']['BACKEND'], settings.CACHES['default']['LOCATION'])"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "csm.settings", "CACHE_URL": "redis://127.0.0.1:6379/3"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.split() == ["django.core.cache.backends.redis.RedisCache", "redis://127.0.0.1:6379/3"]


# --- production: what `check --deploy` needs, and the headers it leads to ---------------------------

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "q8Jv-3mZs_Lw0pXr7N2cYb5Tk9HdGfUe1AiOoRnKtVyWxBzQ4MaS6",
    "ALLOWED_HOSTS": "csm.example.com",
    "CSM_HTTPS": "1",
}


def run_with(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "CSM_HTTPS"}}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, **env, "DJANGO_SETTINGS_MODULE": "csm.settings"},
        capture_output=True,
        text=True,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = run_with(PRODUCTION, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_when_production_is_served_without_https():
    result = run_with({**PRODUCTION, "CSM_HTTPS": "0"}, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


HEADERS = (
    "import django, json; django.setup(); from django.test import Client;"
    "plain = Client().get('/api/v1/accounts/', headers={'host': 'csm.example.com'});"
    "secure = Client().get('/api/v1/accounts/', secure=True, headers={'host': 'csm.example.com'});"
    "print(json.dumps({'plain': [plain.status_code, plain.get('Location')],"
    " 'secure': [secure.status_code, secure.get('Strict-Transport-Security'), secure.get('X-Frame-Options'),"
    " secure.get('Referrer-Policy'), secure.get('X-Content-Type-Options')]}))"
)


def test_production_redirects_to_https_and_sends_hsts():
    result = run_with(PRODUCTION, "-c", HEADERS)
    assert result.returncode == 0, result.stderr
    headers = json.loads(result.stdout.strip().splitlines()[-1])
    assert headers["plain"] == [301, "https://csm.example.com/api/v1/accounts/"]
    assert headers["secure"] == [401, "max-age=31536000; includeSubDomains; preload", "DENY", "same-origin", "nosniff"]


def test_development_sends_no_hsts():
    result = run_with({"CSM_HTTPS": "0"}, "-c", HEADERS.replace("csm.example.com", "localhost"))
    assert result.returncode == 0, result.stderr
    headers = json.loads(result.stdout.strip().splitlines()[-1])
    assert headers["plain"] == [401, None]
    assert headers["secure"][1] is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CSM_HTTPS": "sometimes"}, "CSM_HTTPS='sometimes' is not a boolean"),
        ({"CSM_LOGIN_ATTEMPTS": "0"}, "CSM_LOGIN_ATTEMPTS='0' must be a whole number, 1 or more"),
        ({"CSM_LOGIN_LOCKOUT_SECONDS": "soon"}, "CSM_LOGIN_LOCKOUT_SECONDS='soon' must be a whole number"),
        ({**PRODUCTION, "SECURE_HSTS_SECONDS": "-1"}, "SECURE_HSTS_SECONDS='-1' must be a whole number"),
    ],
)
def test_malformed_security_values_fail_loudly(env, message):
    result = load_settings(**env)
    assert result.returncode != 0
    assert message in result.stderr
