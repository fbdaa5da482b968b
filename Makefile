# A thin front end over CMake: no CMake knowledge needed.
#   make              build everything (Release with debug info) into build/
#   make deps         install the optional Debian packages (DEPS_PKGS) when
#                     root; otherwise print the apt-get command.  The build
#                     leaves out what a missing package would enable.
#   make check        the format check, every test under ASan+UBSan, then the multi-thread
#                     tests under TSan, then the fork and mapping-limit
#                     tests in the release build; non-zero exit on any
#                     failure
#   make bench        the one-lock against vmap-nodes comparison
#   make fuzz         libFuzzer on the space for FUZZ_SECONDS (clang)
#   make soak         the soak test for SOAK_SECONDS
#   make valgrind     unit tests and a short soak under valgrind memcheck
#   make format-check  clang-format --dry-run over FORMAT_FILES (default:
#                     every tracked C file); lists files and lines it would
#                     change, non-zero exit if any
#   make install PREFIX=/usr/local
#   make clean

PREFIX ?= /usr/local
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE  ?= cmake
CTEST  ?= ctest
WERROR ?= $(if $(CI),ON,OFF)
FUZZ_SECONDS ?= 60
FUZZ_SEED ?= 0
SOAK_SECONDS ?= 180
# Optional Debian packages: liburcu-dev and pkg-config (vfree_rcu),
# systemtap-sdt-dev (USDT probes), groff-base (man page lint), gnuplot
# (scripts/plot).
DEPS_PKGS ?= liburcu-dev pkg-config systemtap-sdt-dev groff-base gnuplot-nox

.PHONY: all deps check check-format check-asan check-tsan check-release check-fuzz bench fuzz soak \
	valgrind format-check install clean

all:
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVMAP_WERROR=$(WERROR)
	$(CMAKE) --build build -j $(JOBS)

# Never fails: a package that cannot be installed only turns its feature
# off, and the tests of that feature say "skipped" and why.
deps:
	@missing=$$(for p in $(DEPS_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	done); \
	if [ -z "$$missing" ]; then \
		echo "deps: all installed ($(DEPS_PKGS))"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "deps: not a Debian system; missing features are built out:" $$missing; \
	elif [ "$$(id -u)" -eq 0 ]; then \
		echo "deps: installing" $$missing; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } >/dev/null 2>&1 || \
			echo "deps: apt-get failed; building without:" $$missing; \
	else \
		echo "deps: not root; to enable every feature run: sudo apt-get install" $$missing; \
	fi

check: deps
	$(MAKE) --no-print-directory check-format check-asan check-tsan check-release check-fuzz

# The tree as clang-format (.clang-format) writes it; skipped, saying so,
# where clang-format is missing.
check-format:
	@if command -v $(CLANG_FORMAT) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory format-check; \
	else \
		echo "check-format: skipped: clang-format is not installed (apt-get install clang-format)"; \
	fi

# What sanitizers cannot run: fork while threads allocate, and the
# vmalloc layer at vm.max_map_count.
check-release: all
	cd build && $(CTEST) --output-on-failure -L release

check-asan:
	$(CMAKE) -S . -B build-check -DCMAKE_BUILD_TYPE=Debug -DVMAP_DEBUG=ON \
		-DVMAP_SANITIZE=address -DVMAP_WERROR=$(WERROR)
	$(CMAKE) --build build-check -j $(JOBS)
	cd build-check && $(CTEST) --output-on-failure -j $(JOBS)

check-tsan:
	$(CMAKE) -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DVMAP_DEBUG=ON \
		-DVMAP_SANITIZE=thread -DVMAP_WERROR=$(WERROR)
	$(CMAKE) --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 $(CTEST) --output-on-failure -L mt

# The corpus replays in check-asan with any compiler; with clang, 30 s
# of coverage-guided fuzzing as well, with a fixed seed so that CI runs
# are reproducible (FUZZ_SEED=0, the default of make fuzz, is random).
check-fuzz:
	@if command -v clang >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30 FUZZ_SEED=1; \
	else \
		echo "check-fuzz: clang is not installed: fuzzing skipped (the corpus was replayed)"; \
	fi

fuzz:
	@command -v clang >/dev/null 2>&1 || { echo "make fuzz: needs clang (apt-get install clang)"; exit 2; }
	$(CMAKE) -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DVMAP_DEBUG=ON -DVMAP_SANITIZE=address -DVMAP_FUZZ=ON -DVMAP_TESTS=OFF \
		-DVMAP_TOOLS=OFF -DVMAP_WERROR=$(WERROR)
	$(CMAKE) --build build-fuzz -j $(JOBS) --target fuzz_space
	mkdir -p build-fuzz/corpus
	./build-fuzz/fuzz/fuzz_space -max_total_time=$(FUZZ_SECONDS) -max_len=512 \
		-seed=$(FUZZ_SEED) -print_final_stats=1 build-fuzz/corpus fuzz/corpus

soak: all
	./build/tests/soak $(SOAK_SECONDS)

# Memcheck on the unit tests and a short soak (slow: on demand, not in CI).
# test_vmalloc is left out: its guard pages split the reservation into more
# mappings than valgrind's address-space manager tracks (VG_N_SEGMENTS).
VALGRIND = valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite
valgrind: all
	@for t in test_tree test_api test_placement test_nodes test_fault; do \
		echo "valgrind: $$t"; \
		VMAP_TEST_SCALE=0.2 $(VALGRIND) ./build/tests/$$t >/dev/null || exit 1; \
	done
	$(VALGRIND) ./build/tests/soak 5 6

bench: deps all
	./build/tools/vmap-bench run_test_mask=13 test_loop_count=200000 tag=zone,kernel,address

CLANG_FORMAT ?= clang-format
FORMAT_FILES ?= $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format-check:
	@command -v $(CLANG_FORMAT) >/dev/null 2>&1 || \
		{ echo "format-check: needs clang-format (apt-get install clang-format)"; exit 2; }
	@total=0; for f in $(FORMAT_FILES); do \
		n=$$($(CLANG_FORMAT) --style=file "$$f" | diff "$$f" - | grep -c '^>'); \
		[ "$$n" -eq 0 ] || echo "format-check: $$f: $$n lines would change"; \
		total=$$((total + n)); \
	done; \
	echo "format-check: $$total lines would change"; [ "$$total" -eq 0 ]

install: all
	$(CMAKE) --install build --prefix $(PREFIX)

clean:
	rm -rf build build-check build-tsan build-fuzz
