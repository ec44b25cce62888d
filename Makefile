# Every target bootstraps .venv itself through dev.py.
PY ?= python3

.PHONY: run test lint format worker beat bench migrate prod loadtest

run:  ## migrate, seed demo data if empty, serve on http://127.0.0.1:8000
	$(PY) dev.py run

test:  ## the whole suite (SQLite; PostgreSQL when DATABASE_URL is set)
	$(PY) dev.py test

lint:
	$(PY) dev.py lint

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

migrate:
	.venv/bin/python manage.py migrate

worker:  ## needs CELERY_BROKER_URL
	.venv/bin/celery -A csm worker -l info

beat:  ## needs CELERY_BROKER_URL
	.venv/bin/celery -A csm beat -l info

bench:  ## the scale benchmark on PostgreSQL (DATABASE_URL, a database of its own); ARGS="--accounts 100000"
	.venv/bin/python manage.py bench $(ARGS)

prod:  ## the production stack on 127.0.0.1:8000 (gunicorn, worker, beat; DEBUG=0); needs DATABASE_URL and CELERY_BROKER_URL; ARGS="--port 8000"
	$(PY) dev.py prod $(ARGS)

loadtest:  ## 8 partner clients and a workspace user against the production stack, with the figures; LOAD_SECONDS=60, ARGS="--reuse"
	BENCH_LOAD_SECONDS=$(or $(LOAD_SECONDS),60) .venv/bin/python manage.py bench --only load $(ARGS)
