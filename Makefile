# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_POOL := demo-pool
DEMO_LAKE := demo-lake

.PHONY: demo test install clean browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-demo: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/soclake sample-pool $(DEMO_POOL)
	$(BIN)/soclake ingest soc $(DEMO_POOL)/segments --lake $(DEMO_LAKE) --source-name sample \
	    --quality $(DEMO_POOL)/segments/segment_quality.json
	$(BIN)/soclake ingest backgrounds $(DEMO_POOL)/backgrounds --lake $(DEMO_LAKE) --source-name sample-bg
	$(BIN)/soclake info --lake $(DEMO_LAKE)
	$(BIN)/soclake sql --lake $(DEMO_LAKE) \
	    "SELECT category, count(*) AS segments, count(DISTINCT subcategory) AS subcategories, any_value(dominant_color) AS a_colour FROM filter_4 GROUP BY category ORDER BY category"
	$(BIN)/soclake run jobs/demo.toml --lake $(DEMO_LAKE)
	$(BIN)/soclake jobs --lake $(DEMO_LAKE)
	$(BIN)/soclake show demo --lake $(DEMO_LAKE) --out $(DEMO_LAKE)/demo-sample.png
	$(BIN)/soclake audit --lake $(DEMO_LAKE) --job demo --vocab coco --out $(DEMO_LAKE)/audit.html
	$(BIN)/soclake run jobs/relight.toml --lake $(DEMO_LAKE)
	$(BIN)/soclake run jobs/refexp.toml --lake $(DEMO_LAKE)
	$(BIN)/soclake run jobs/soc_fc.toml --lake $(DEMO_LAKE) --set job.images=8 --set job.shard_size=4
	$(BIN)/soclake run jobs/soc_fc_relight.toml --lake $(DEMO_LAKE) --set relight.backend=classic
	$(BIN)/soclake run jobs/soc_fc_refexp.toml --lake $(DEMO_LAKE) --set refexp.backend=graph
	$(BIN)/soclake export --lake $(DEMO_LAKE) --job soc-fc-refexp --format soc --out $(DEMO_LAKE)/soc-fc-export
	$(BIN)/soclake ingest soc-output $(DEMO_LAKE)/soc-fc-export --lake $(DEMO_LAKE) --name soc-fc-back --shard-size 4
	$(BIN)/soclake jobs --lake $(DEMO_LAKE)
	$(BIN)/soclake verify --lake $(DEMO_LAKE) --deep

# Headless Chromium for the tests that open HTML in a browser (tests/test_audit_browser.py):
# Debian's chromium (apt, as root; Playwright's own download is not reachable) and Playwright.
browser-deps: $(VENV)/.installed-dev
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q chromium; } \
	    || { echo "browser-deps: install Debian's chromium as root (apt-get install -y chromium)"; exit 1; }
	@$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/pip install -q playwright

test: $(VENV)/.installed-dev browser-deps
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_POOL) $(DEMO_LAKE)
