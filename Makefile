# The two commands (fresh Debian 12, as root):  make demo   and   make test
# Both install missing Debian packages first (scripts/install-deps.sh).
JOBS ?= $(shell nproc)
CTEST_ARGS ?=
FUZZ_SECONDS ?= 60

.PHONY: all deps deps-demo release debug asan tsan fuzz-build demo test test-release test-asan test-tsan \
        test-fuzz fuzz format tidy clean

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
	FUZZ_SECONDS=30 scripts/fuzz.sh

format:
	git ls-files '*.hpp' '*.cpp' | xargs clang-format -i

tidy: release
	git ls-files 'engine/*.cpp' 'tools/*.cpp' 'connectors/*.cpp' 'exporters/*.cpp' | xargs clang-tidy -p build/release --quiet

clean:
	rm -rf build
