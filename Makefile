# aiconform — the two set-up commands are `make test-cluster` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# This project's machines reach no release download site: binaries are built from the Go module proxy and
# cached under ~/.cache/aiconform.  On a machine with internet, `make ... AICONFORM_DOWNLOAD=auto` fetches
# official releases (checksum verified) instead.
export AICONFORM_DOWNLOAD ?= never
# The main job's profile: the most complete run this machine allows.  `conformance` (every MUST, tier R) needs root on
# Linux and the Debian packages of the real node (runc, iproute2, iptables, the CNI plugins, busybox-static; the
# real node's own containerd is built like every upstream binary); elsewhere `conformance-s` (tier S, no root).
# `make test-cluster PROFILE=NAME` picks another.  TIER_R_MISSING: why tier R is out here (empty: it is not).
TIER_R_MISSING := $(shell if [ "$$(uname -s)" != Linux ]; then echo "not Linux"; \
                   elif [ "$$(id -u)" != 0 ]; then echo "not root"; \
                   else m=""; for x in runc ip iptables; do command -v $$x >/dev/null || m="$$m $$x"; done; \
                        [ -x /usr/lib/cni/bridge ] || m="$$m containernetworking-plugins"; \
                        [ -x /bin/busybox ] || m="$$m busybox-static"; \
                        [ -z "$$m" ] || echo "missing:$$m"; fi)
PROFILE ?= $(if $(TIER_R_MISSING),conformance-s,conformance)
ifneq ($(origin PROFILE),file)
PROFILE_WHY := you named it (PROFILE=$(PROFILE))
else ifeq ($(TIER_R_MISSING),)
PROFILE_WHY := tier R, every CNCF MUST: root on Linux with the real node's packages
else
PROFILE_WHY := tier S ($(TIER_R_MISSING); tier R's real node needs root on Linux and its packages): gang scheduling and cluster autoscaling of the 8 MUSTs
endif

.PHONY: venv bins bins-all test test-unit test-integration test-cluster selftest bench lint docs clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,training,serving]'
	touch $@

venv: $(BIN)/.installed

## Resolve (build on first use) the pinned upstream binaries: etcd, kube-*, kubelet, kube-proxy, CoreDNS, kwok,
## containerd, for the default Kubernetes version.  The previous minor is built when something first needs it (the
## upgrade tests, `--kubernetes previous`), or up front with `aiconform bins --previous`.
bins: venv
	$(BIN)/aiconform bins

## Every pinned binary, the addons' too (Kueue, Traefik, Karpenter, ...): a failing build shows before the tests.
bins-all: venv
	$(BIN)/aiconform bins --all

## The project's own tests: the unit tests that run no upstream binary first (no build to wait for), then the
## pinned binaries (`aiconform bins`), the unit tests that run one, then integration (real local clusters) even when
## a unit test failed (the exit status is then the unit tests').  .ci/run runs it beside a background build.
test: venv
	@unit=0; $(BIN)/pytest tests/unit -m "not bins" || unit=$$?; \
	$(BIN)/aiconform bins || exit $$?; \
	$(BIN)/pytest tests/unit -m bins || unit=$$?; \
	$(BIN)/pytest tests/integration && exit $$unit

test-unit: venv
	$(BIN)/pytest tests/unit

test-integration: venv bins
	$(BIN)/pytest tests/integration

## The main job: bring up the $(PROFILE) local cluster (see PROFILE above), run every suite, write reports/<run-id>/,
## tear down.  The run's last lines give the verdict: how many CNCF MUSTs were evidenced, and what each other one needs.
test-cluster: venv bins
	@echo "make test-cluster: profile $(PROFILE), $(PROFILE_WHY)"
	$(BIN)/aiconform run --profile $(PROFILE)

## Power: bring up every mutated platform of the MUST requirements that this machine can run (tier S) and show that
## each check naming a mutation fails on it; exit 1 on a blind spot (docs/selftest.md).  `make test` runs the gang
## subset (tests/integration/test_selftest.py).
selftest: venv bins
	$(BIN)/aiconform selftest --must --report-dir reports/selftest

## Benchmarks: print figures and write bench/results.json.
bench: venv bins
	$(BIN)/python bench/bench_local.py --out bench/results.json
	$(BIN)/python bench/bench_suite.py --profile $(PROFILE) --reps 1 --out bench/results-conformance.json
	$(BIN)/python bench/bench_suite.py --examples 8 --out bench/results-suite.json
	$(BIN)/python bench/bench_allocate.py --out bench/results-allocate.json
	$(BIN)/python bench/bench_serving.py --out bench/results-serving.json
	$(BIN)/python bench/bench_kueue.py --out bench/results-kueue.json
	$(BIN)/python bench/bench_upgrade.py --out bench/results-upgrade.json
	$(BIN)/python bench/bench_karpenter.py --out bench/results-karpenter.json
	$(BIN)/python bench/bench_simulate.py --out bench/results-simulate.json
	$(BIN)/python bench/bench_training.py --out bench/results-training.json
	$(BIN)/python bench/bench_dra.py --out bench/results-dra.json
	@if [ "$$(id -u)" = 0 ] && command -v dockerd >/dev/null; then \
		$(BIN)/python bench/bench_kind.py --cold --out bench/results-kind.json; \
	else echo "bench_kind.py: skipped (the kind provider needs root and docker.io)"; fi

lint: venv
	$(BIN)/ruff check harness fake_gpu_plugin reference_workloads scenarios tests bench examples
	$(BIN)/mypy harness fake_gpu_plugin reference_workloads

## The documentation site: docs/ and mkdocs.yml built into site/ in strict mode (a broken link or anchor, or a page
## left out of the nav, fails).  NO_MKDOCS_2_WARNING silences Material's end-of-life banner, which is no build warning.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) reports .pytest_cache site
