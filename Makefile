# Shortcuts for the scripts in scripts/ (they work without make, too).
.PHONY: run test lint format bench demo-update

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench:
	.venv/bin/python bench/seed_demo.py

demo-update:
	bash scripts/bootstrap.sh --test
	.venv/bin/python scripts/demo_update.py
