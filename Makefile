# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_POOL := demo-pool
DEMO_LAKE := demo-lake

.PHONY: demo test install docs clean browser-deps

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
	@echo
	@echo "Browse the demo lake in a web browser (pool, SQL, jobs, images, audit; http://127.0.0.1:8000/):"
	@echo "    $(BIN)/soclake app --lake $(DEMO_LAKE)"

# The browser tests (the app's and the audit report's) drive Debian's Chromium with Playwright
# (pip, in the dev extra); no browser is downloaded. As root (CI) a missing chromium is installed with apt.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "the browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

test: $(VENV)/.installed-dev browser-deps
	$(BIN)/python -m pytest -q

docs: $(BIN)/python
	$(BIN)/python tools/gen_reference.py

clean:
	rm -rf $(VENV) $(DEMO_POOL) $(DEMO_LAKE)
