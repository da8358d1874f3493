# stoke — the commands a newcomer needs. `make run` serves the demo site,
# `make test` runs everything CI runs.

CARGO ?= cargo
ADDR ?= 127.0.0.1:8080
FUZZ_SECONDS ?= 60
SANITIZER ?= none

# The server models (`--model`); `make test` runs the integration tests once per model.
MODELS := reactor reactor-inline pool thread-per-connection
MODEL ?= reactor
# Integration test files that start servers of the model in STOKE_TEST_MODEL
# (models.rs starts each model itself; fuzz_corpus.rs and the alloc_*.rs counters start none or pin the reactor).
MODEL_TESTS := $(patsubst tests/%.rs,--test %,$(filter-out tests/models.rs tests/fuzz_corpus.rs tests/alloc_reactor.rs tests/alloc_worker.rs tests/alloc_end_to_end.rs,$(wildcard tests/*.rs)))

.PHONY: all build release run test test-model test-reactors unit lint fmt check-targets test-deps bench bench-deps bench-quick compare-models bench-idle fuzz fuzz-target fuzz-replay clean

all: build

build:
	$(CARGO) build --release

release: build

## Build and serve the bundled demo site on http://$(ADDR)
run: build
	./target/release/stoke examples/site --listen $(ADDR) --listing

## The whole suite: formatting, lints, unit + integration tests (real
## sockets, curl, python's http.client, headless Chromium), fuzz-corpus replay;
## the integration tests once per server model, the rest once.
test: test-deps lint
	STOKE_TEST_MODEL=reactor $(CARGO) test --all-targets --features test-hooks
	@set -e; for m in $(filter-out reactor,$(MODELS)); do \
		echo "== integration tests, --model $$m"; \
		STOKE_TEST_MODEL=$$m $(CARGO) test --features test-hooks $(MODEL_TESTS); \
	done
	@echo "== integration tests, --reactors 2"
	STOKE_TEST_REACTORS=2 $(CARGO) test --features test-hooks $(MODEL_TESTS)

## The integration tests with two event loops sharing the pool (--reactors 2).
test-reactors: test-deps
	STOKE_TEST_REACTORS=2 $(CARGO) test --features test-hooks $(MODEL_TESTS)

## The integration tests against one model: make test-model MODEL=pool
test-model: test-deps
	STOKE_TEST_MODEL=$(MODEL) $(CARGO) test --features test-hooks $(MODEL_TESTS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --features test-hooks -- -D warnings

fmt:
	$(CARGO) fmt --all

## The tools the tests drive (curl, python3, chromium); installs what is missing.
test-deps:
	./scripts/test-deps.sh

## The kqueue side (macOS, FreeBSD) must keep compiling.
check-targets:
	./scripts/check-targets.sh

## The benchmark tools: wrk, nginx, lighttpd, h2o, strace, valgrind (apt), matplotlib (pip).
bench-deps:
	./benches/setup.sh

## stoke vs nginx, lighttpd, h2o on loopback -> BENCHMARKS.md + docs/bench.svg
## (~12 min; BENCH_QUICK=1 for a ~2 min smoke run; knobs in benches/README.md).
bench: release
	PYTHONDONTWRITEBYTECODE=1 SKIP_BUILD=1 python3 benches/bench.py

bench-quick: release
	PYTHONDONTWRITEBYTECODE=1 SKIP_BUILD=1 BENCH_QUICK=1 python3 benches/bench.py

## stoke's --model choices side by side -> docs/MODELS-results.md + docs/models-*.svg
## (MODELS_QUICK=1 for a short smoke run).
compare-models: release
	PYTHONDONTWRITEBYTECODE=1 SKIP_BUILD=1 python3 benches/models.py

## Idle CPU and memory per idle keep-alive connection: bench.py's idle section
## alone -> bench-results/idle.md (~1 min; BENCH_IDLE_CONNS, BENCH_SERVERS).
bench-idle: release
	mkdir -p bench-results
	PYTHONDONTWRITEBYTECODE=1 SKIP_BUILD=1 BENCH_SECTIONS=idle BENCH_OUT=bench-results/idle.md \
		BENCH_SVG=bench-results/idle.svg python3 benches/bench.py

## Every fuzz target for FUZZ_SECONDS each (make fuzz SANITIZER=address for ASan).
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) SANITIZER=$(SANITIZER) ./fuzz/run.sh

## One target: make fuzz-target T=request_head
fuzz-target:
	FUZZ_SECONDS=$(FUZZ_SECONDS) SANITIZER=$(SANITIZER) ./fuzz/run.sh $(T)

clean:
	$(CARGO) clean
