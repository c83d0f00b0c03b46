# One-line entry points; see README.md.
.PHONY: setup test demo lint bench

setup:
	bash scripts/setup.sh

test: setup
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q

demo: setup
	HF_HUB_OFFLINE=1 .venv/bin/python -m backtest.run --symbol EURUSD --out runs/demo
	@echo "open runs/demo/report.html in a browser (works offline)"

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
