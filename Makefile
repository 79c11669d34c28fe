# Thin wrapper around CMake so the README's two commands work on a fresh
# machine.  `make test` and `make demo` install missing Debian packages when
# run as root, configure, build, and run.
BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build test demo bench install clean check-asan check-tsan check-valgrind

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

demo: build
	$(BUILD)/deltafs demo

bench: build
	$(BUILD)/deltafs bench

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-*
