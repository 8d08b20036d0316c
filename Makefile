# Thin front over CMake. `make run` and `make test` install what is missing first.
BUILD      ?= build
BUILD_SAN  ?= build-asan
BUILD_FUZZ ?= build-fuzz
BUILD_COV  ?= build-cov
JOBS       ?= $(shell nproc)
CMAKE_TYPE ?= RelWithDebInfo
PORT       ?= 3000

.PHONY: all deps build build-asan build-fuzz run test test-fast test-asan unit e2e fuzz bench format \
        format-check lint clean
.PHONY: package coverage
.PHONY: bench-backends bench-events bench-integrity bench-tenancy bench-ddb-client

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(CMAKE_TYPE) >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

$(BUILD_SAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DPX_SANITIZE=ON >/dev/null

build-asan: deps $(BUILD_SAN)/CMakeCache.txt
	cmake --build $(BUILD_SAN) -j$(JOBS)

# The libFuzzer harnesses (clang, ASan+UBSan); tests/fuzz/fuzz_*.c.
$(BUILD_FUZZ)/CMakeCache.txt:
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Debug -DPX_FUZZ=ON -DPX_TESTS=OFF >/dev/null

build-fuzz: deps $(BUILD_FUZZ)/CMakeCache.txt
	cmake --build $(BUILD_FUZZ) -j$(JOBS)

# Seeds the embedded stores under ./var and serves on 127.0.0.1:$(PORT).
run: build
	$(BUILD)/pricing db seed
	$(BUILD)/pricing serve --port $(PORT)

# Everything: style, unit and end-to-end tests, then all of it again under ASan+UBSan,
# then a short pass of every fuzz harness (TEST_FUZZ_SECONDS each, default 5).
test: build build-asan build-fuzz
	scripts/test.sh $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)

test-fast: build
	scripts/test.sh $(BUILD)

# Line coverage of src/ over the unit, end-to-end and integration tests (slow;
# not part of `make test`): $(BUILD_COV)/coverage/index.html and per-directory figures.
$(BUILD_COV)/CMakeCache.txt:
	cmake -S . -B $(BUILD_COV) -DCMAKE_BUILD_TYPE=Debug -DPX_COVERAGE=ON >/dev/null

coverage: deps $(BUILD_COV)/CMakeCache.txt
	cmake --build $(BUILD_COV) -j$(JOBS)
	scripts/coverage.sh $(BUILD_COV)

# The long run: FUZZ_SECONDS (default 60) per harness.
fuzz: build-fuzz
	scripts/fuzz.sh $(BUILD_FUZZ) $${FUZZ_SECONDS:-60}

bench: build
	bench/run.sh $(BUILD)/pricing
	bench/integrity.sh $(BUILD)/pricing
	bench/tenancy.sh $(BUILD)/pricing

# Look-ups with the audit trail's integrity on and off, alternated in one run,
# and audit verify in records/s; replaces its section of bench/RESULTS.md.
bench-integrity: build
	bench/integrity.sh $(BUILD)/pricing

# The same load with prices in PostgreSQL and the audit trail in dynalite;
# appends its section to bench/RESULTS.md.
bench-backends: build
	bench/run-backends.sh $(BUILD)/pricing

# CPU per PutItem round trip: curl_easy_perform vs the client's CONNECT_ONLY
# exchange vs a bare socket, against dynalite; prints, writes nothing.
bench-ddb-client:
	bench/ddb-client.sh

# Look-ups with TENANCY=on vs off in the same run; appends "## Tenancy" to
# bench/RESULTS.md (docs/internals/tenancy.md).
bench-tenancy: build
	bench/tenancy.sh $(BUILD)/pricing

# Event relay throughput and lag to RabbitMQ and SQS (fauxqs), brokers started
# and stopped by the script (docs/internals/events.md).
bench-events: build
	/usr/bin/python3 bench/events.py $(BUILD)/pricing

format:
	clang-format -i $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]')

lint:
	@scripts/lint.sh

# dist/pricing-<version>-linux-<arch>.zip (+ dist/SHA256SUMS): the Lambda artifact,
# reproducible, refused when it needs a glibc newer than Amazon Linux 2023's.
# PACKAGE_ARCH=arm64 cross-builds (scripts/arm64-sysroot.sh first).
package: deps
	scripts/package.sh $(if $(PACKAGE_ARCH),--arch $(PACKAGE_ARCH))

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ) $(BUILD_COV)
