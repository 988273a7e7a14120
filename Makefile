# The two commands (fresh Debian 12, as root):  make demo   and   make test
# Both install missing Debian packages first (scripts/install-deps.sh).
JOBS ?= $(shell nproc)
CTEST_ARGS ?=
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 300
SOAK_PRESETS ?= tsan asan

.PHONY: all deps deps-demo release debug asan tsan fuzz-build demo test test-release test-asan test-tsan \
        test-fuzz fuzz soak format tidy clean

all: release

deps:
	@scripts/install-deps.sh build

deps-demo:
	@scripts/install-deps.sh demo

release debug asan tsan: deps
	cmake --preset $@ >/dev/null
	cmake --build --preset $@ -j $(JOBS)

# The main job: build, run the default end-to-end scenario, print its table. Results go to a new
# folder under results/local/ (ignored by git); the committed reference sets are never written.
demo: deps-demo release
	scripts/demo.sh

test: test-release test-tsan test-asan test-fuzz
	@echo "ringflow: all test suites passed (release, tsan, asan, fuzz)"

test-release: release
	ctest --preset release -j $(JOBS) $(CTEST_ARGS)

test-tsan: tsan
	ctest --preset tsan -j $(JOBS) $(CTEST_ARGS)

test-asan: asan
	ctest --preset asan -j $(JOBS) $(CTEST_ARGS)

# libFuzzer targets (tests/fuzz, clang-14): `make fuzz` runs each for FUZZ_SECONDS; CI runs
# each for 30 s. Any crash, leak or broken invariant fails.
fuzz-build: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

test-fuzz: fuzz-build
	FUZZ_SECONDS=30 FUZZ_SEED=1 scripts/fuzz.sh

# The randomized soak (tests/soak) for SOAK_SECONDS under each of SOAK_PRESETS (CI runs a
# 60-second version inside test-tsan and test-asan). Replay a failure with
# RINGFLOW_SOAK_SEED=<seed printed by the run>.
soak: deps
	set -e; for p in $(SOAK_PRESETS); do \
	  cmake --preset $$p >/dev/null; \
	  cmake --build --preset $$p -j $(JOBS) --target ringflow_soak_tests; \
	  RINGFLOW_SOAK_SECONDS=$(SOAK_SECONDS) \
	  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_init_order=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  build/$$p/tests/ringflow_soak_tests; \
	done

format:
	git ls-files '*.hpp' '*.cpp' | xargs clang-format -i

tidy: release
	git ls-files 'engine/*.cpp' 'tools/*.cpp' 'connectors/*.cpp' 'exporters/*.cpp' | xargs clang-tidy -p build/release --quiet

clean:
	rm -rf build
