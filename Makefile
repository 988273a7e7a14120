# The two commands (fresh Debian 12, as root):  make demo   and   make test
# Both install missing Debian packages first (scripts/install-deps.sh).
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: all deps deps-demo release debug asan tsan demo test test-release test-asan test-tsan format tidy clean

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

test: test-release test-tsan test-asan
	@echo "ringflow: all test suites passed (release, tsan, asan)"

test-release: release
	ctest --preset release -j $(JOBS) $(CTEST_ARGS)

test-tsan: tsan
	ctest --preset tsan -j $(JOBS) $(CTEST_ARGS)

test-asan: asan
	ctest --preset asan -j $(JOBS) $(CTEST_ARGS)

format:
	git ls-files '*.hpp' '*.cpp' | xargs clang-format -i

tidy: release
	git ls-files 'engine/*.cpp' 'tools/*.cpp' 'connectors/*.cpp' 'exporters/*.cpp' | xargs clang-tidy -p build/release --quiet

clean:
	rm -rf build
