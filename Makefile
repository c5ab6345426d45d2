# psl: thin wrapper over CMake + Ninja. See README.md.
#   make          build (RelWithDebInfo) into build/
#   make run      run the main job: examples/pi.lua on 4 workers of the embedded federation
#   make test     install missing dependencies, build, run the whole suite through CTest
#   make asan     the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz     each libFuzzer target for FUZZ_SECONDS (default 60) under ASan+UBSan
#   make bench    build and run the benchmarks in bench/
#   make lint     clang-tidy (.clang-tidy) and cppcheck over src/
BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=

.PHONY: all deps configure build run test asan fuzz bench lint clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD) -j $(JOBS)

run: deps build
	$(BUILD)/psl run examples/pi.lua --workers 4 --data psl-data

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_C_COMPILER=clang -DPSL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	ninja -C build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS)

fuzz: deps
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DPSL_SANITIZE=ON -DPSL_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
	ninja -C build-fuzz -j $(JOBS)
	@set -e; for t in build-fuzz/tests/fuzz_*; do \
		n=$$(basename $$t); mkdir -p build-fuzz/corpus/$$n; \
		echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build-fuzz/ \
			build-fuzz/corpus/$$n tests/fuzz/corpus/$$n >build-fuzz/$$n.log 2>&1 \
			|| { tail -n 40 build-fuzz/$$n.log; echo "fuzz: $$n FAILED (artifacts in build-fuzz/)"; exit 1; }; \
		grep -E '^(#[0-9]+ +DONE|stat::average_exec_per_sec|stat::number_of_executed_units)' build-fuzz/$$n.log; \
	done

bench: deps build
	$(BUILD)/bench/record_bench
	$(BUILD)/bench/capsuled_bench
	$(BUILD)/bench/scl_bench
	@if [ -x $(BUILD)/bench/ring_bench ]; then $(BUILD)/bench/ring_bench; fi
	@if [ -x $(BUILD)/bench/cold_start_bench ]; then $(BUILD)/bench/cold_start_bench; fi
	@if [ -x $(BUILD)/bench/node_bench ]; then $(BUILD)/bench/node_bench; fi
	@if [ -x $(BUILD)/bench/lsm_bench ]; then $(BUILD)/bench/lsm_bench; fi

lint: deps
	cmake -S . -B build-lint -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
	clang-tidy --quiet -p build-lint src/*/*.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 -I src src

.PHONY: sim-long
# sim-long: the deterministic simulator over 10,000 seeds (SIM_FIRST.. ); prints every failing
# seed with its replay command and fails if any did.
SIM_FIRST ?= 1
sim-long: build
	$(BUILD)/tests/psl-sim --count 10000 --first $(SIM_FIRST) --quiet

clean:
	rm -rf build-lint $(BUILD) build-asan build-fuzz
