"""Settings come from the environment and refuse unsafe or malformed values loudly."""

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
