# A thin front end over CMake: no CMake knowledge needed.
#   make              build everything (Release with debug info) into build/
#   make check        every test under ASan+UBSan, then the multi-thread
#                     tests under TSan; non-zero exit on any failure
#   make bench        the one-lock against vmap-nodes comparison
#   make install PREFIX=/usr/local
#   make clean

PREFIX ?= /usr/local
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE  ?= cmake
CTEST  ?= ctest
WERROR ?= $(if $(CI),ON,OFF)

.PHONY: all check check-asan check-tsan bench install clean

all:
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVMAP_WERROR=$(WERROR)
	$(CMAKE) --build build -j $(JOBS)

check: check-asan check-tsan

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

bench: all
	./build/tools/vmap-bench run_test_mask=13 test_loop_count=200000 tag=kernel,address

install: all
	$(CMAKE) --install build --prefix $(PREFIX)

clean:
	rm -rf build build-check build-tsan
