# ednaquery: two commands from a fresh clone.
#   make demo   set up .venv, index examples/, run example queries, train one tiny config, find the run
#   make test   set up .venv, lint with ruff and run the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The venv is rebuilt only when pyproject.toml changes (stamp named after its hash).
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO_STORE := $(CURDIR)/.demo/index.db
EQ := $(BIN)/ednaquery --store $(DEMO_STORE)

.PHONY: venv demo test bench clean browser

venv: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> setting up $(VENV) (torch from the local wheel cache where present; first run takes a few minutes)"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[train,dev,frames,ui]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	@rm -rf .demo && mkdir -p .demo
	@echo "==> indexing examples/ into $(DEMO_STORE)"
	$(EQ) index examples/
	@echo "==> ednaquery find 'lr<1e-3' model=vit"
	-$(EQ) find 'lr<1e-3' model=vit
	@echo "==> ednaquery find model=convnext,resnet18 img_size=32 --sort=-lr"
	-$(EQ) find model=convnext,resnet18 img_size=32 --sort=-lr
	@echo "==> ednaquery count kind=config optimizer=adamw"
	-$(EQ) count kind=config optimizer=adamw
	@echo "==> ednaquery errors   (the broken file in examples/ is an error record, not a crash)"
	-$(EQ) errors
	@echo "==> trainer launch examples/quickstart/resnet18_digits.yaml  (a few seconds on CPU)"
	$(BIN)/trainer --store $(DEMO_STORE) launch examples/quickstart/resnet18_digits.yaml --runs-root .demo/runs
	@echo "==> ednaquery find kind=run val_acc>0.5 --sort=-val_acc"
	$(EQ) find kind=run 'val_acc>0.5' --sort=-val_acc

# the ui's browser tests drive Debian's chromium with chromium-driver; installed only when missing
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "==> installing chromium and chromium-driver (apt-get) for the ui's browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; }

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/query_latency.py

clean:
	rm -rf .demo .pytest_cache build *.egg-info
