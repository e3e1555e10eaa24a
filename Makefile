# saeflow - plain GNU make. `make` builds every stage into build/bin/; `make test` runs tests/run.
# Library flags come from pkg-config only. Stages are stages/NAME.c or stages/NAME/*.c[c]
# (a folder stage with .cc files is linked with $(CXX)); per-stage extra libraries: LDLIBS_NAME.
# The default build is portable (x86-64 baseline, -O2 -g; hot loops also in AVX2/AVX-512 clones picked at load, proto/parallel.h): its binaries run on any x86-64 host and
# under valgrind. `make native` builds the same with OPT='-O2 -g -march=native' into build-native/
# (faster loops on this CPU; the binaries may die with SIGILL on another host or under valgrind).
# OpenBLAS's kernel is chosen at run time either way (proto/blas.h).

BUILD    ?= build
CC       ?= cc
CXX      ?= c++
MSGPACK_PC := $(shell pkg-config --exists msgpack-c && echo msgpack-c || echo msgpack)
PCS      := $(MSGPACK_PC) libzstd libzmq openblas libcjson
PC_CFLAGS := $(shell pkg-config --cflags $(PCS) 2>/dev/null)
PC_LIBS  := $(shell pkg-config --libs $(PCS) 2>/dev/null)
OPT      ?= -O2 -g -ftree-vectorize
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS   ?= $(OPT)
CFLAGS   += -std=c11 -D_GNU_SOURCE $(WARN) -Iproto $(PC_CFLAGS) -MMD -MP
CXXFLAGS ?= $(OPT)
CXXFLAGS += -std=c++17 -D_GNU_SOURCE -Wall -Iproto $(PC_CFLAGS) -MMD -MP
LDLIBS   := $(PC_LIBS) -lm -lpthread
LDLIBS_sf-tokenize := -lsentencepiece
ifeq ($(WERROR),1)
CFLAGS += -Werror
endif

PROTO_SRC := $(wildcard proto/*.c)
PROTO_OBJ := $(PROTO_SRC:%.c=$(BUILD)/obj/%.o)
LIBPROTO  := $(BUILD)/libproto.a

STAGE_FILES := $(basename $(notdir $(wildcard stages/*.c)))
STAGE_DIRS  := $(notdir $(patsubst %/,%,$(wildcard stages/*/)))
STAGES      := $(STAGE_FILES) $(STAGE_DIRS)
BINS        := $(STAGES:%=$(BUILD)/bin/%)
UNIT_SRC    := $(wildcard tests/unit/test-*.c)
UNITS       := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC   := $(wildcard bench/*.c)
BENCHES     := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz-*.c)

.PHONY: all test asan bench fuzz fuzz-long clean debug native test-long report-check
all: $(BINS) $(UNITS) $(BENCHES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/obj/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(LIBPROTO): $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# single-file stages
$(STAGE_FILES:%=$(BUILD)/bin/%): $(BUILD)/bin/%: $(BUILD)/obj/stages/%.o $(LIBPROTO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIBPROTO) $(LDLIBS_$*) $(LDLIBS)

# folder stages: every .c/.cc inside (linked with the C++ driver when there is a .cc file;
# the commands sit in variables because their flags may hold commas, which $(if) would split)
LINK_c   = $(CC) $(CFLAGS)
LINK_cxx = $(CXX) $(CXXFLAGS)
define DIR_STAGE
$(1)_SRC := $(wildcard stages/$(1)/*.c) $(wildcard stages/$(1)/*.cc)
$(1)_OBJ := $$(patsubst %.cc,$(BUILD)/obj/%.o,$$(patsubst %.c,$(BUILD)/obj/%.o,$$($(1)_SRC)))
$(BUILD)/bin/$(1): $$($(1)_OBJ) $(LIBPROTO)
	@mkdir -p $$(dir $$@)
	$$(LINK_$$(if $$(filter %.cc,$$($(1)_SRC)),cxx,c)) -o $$@ $$($(1)_OBJ) $(LIBPROTO) $$(LDLIBS_$(1)) $(LDLIBS)
endef
$(foreach d,$(STAGE_DIRS),$(eval $(call DIR_STAGE,$(d))))

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBPROTO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIBPROTO) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBPROTO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIBPROTO) $(LDLIBS)

test: all
	SF_BUILD=$(BUILD) tests/run

test-long: all
	SF_BUILD=$(BUILD) SF_TEST_LONG=1 tests/run

debug:
	$(MAKE) BUILD=build-debug OPT="-O0 -g"

native:
	$(MAKE) BUILD=build-native OPT="-O2 -g -march=native" all

ASAN_FLAGS := -O1 -g -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
asan:
	$(MAKE) BUILD=build-asan OPT="$(ASAN_FLAGS)" all
	SF_BUILD=build-asan SF_ASAN=1 ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp tests/run

bench: all
	SF_BUILD=$(BUILD) bench/run

# libFuzzer targets (clang, ASan + UBSan): `make fuzz` runs each for FUZZ_SECONDS (default 60),
# `make fuzz-long` for 600. Corpora: tests/fuzz/seeds-NAME (small, ours) plus, where
# ../shared/fixtures is there, copies of its real files in build-fuzz/fixture-seeds-NAME.
FUZZ_SECONDS ?= 60
FUZZ_NAMES  := $(basename $(notdir $(FUZZ_SRC)))
FUZZ_BINS   := $(FUZZ_NAMES:%=build-fuzz/%)
FUZZ_EXTRA_fuzz-tokenizer-json := stages/sf-tokenize/hf-bpe.c
FUZZ_EXTRA_fuzz-jsonl := stages/sf-tokenize/hf-bpe.c
FUZZ_EXTRA_fuzz-partial := $(wildcard stages/sf-reduce/*.c)
FUZZ_CFLAGS_fuzz-partial := -DSF_REDUCE_NO_MAIN
FX := ../shared/fixtures
FUZZ_FIXTURES_fuzz-hf-config := $(FX)/models/*/config.json
FUZZ_FIXTURES_fuzz-sae-cfg := $(FX)/saes/*/cfg.json
FUZZ_FIXTURES_fuzz-tokenizer-json :=
FUZZ_FIXTURES_fuzz-safetensors := $(FX)/saes/*/sae_weights.safetensors
FUZZ_FIXTURES_fuzz-jsonl := $(FX)/data/*.jsonl
FUZZ_FIXTURES_fuzz-partial :=

.SECONDEXPANSION:
build-fuzz/%: tests/fuzz/%.c $(PROTO_SRC) $(wildcard proto/*.h) $$(FUZZ_EXTRA_$$*)
	@mkdir -p build-fuzz
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -std=c11 -D_GNU_SOURCE -Iproto $(PC_CFLAGS) \
	    -o $@ $< $(PROTO_SRC) $(FUZZ_CFLAGS_$*) $(FUZZ_EXTRA_$*) $(LDLIBS)

fuzz: $(FUZZ_BINS)
	$(foreach n,$(FUZZ_NAMES),mkdir -p build-fuzz/corpus-$(n) build-fuzz/fixture-seeds-$(n) && \
	  { for f in $(FUZZ_FIXTURES_$(n)); do [ -f "$$f" ] && cp "$$f" "build-fuzz/fixture-seeds-$(n)/$$(echo "$$f" | tr / _)"; done; true; } && \
	  build-fuzz/$(n) -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65536 \
	    build-fuzz/corpus-$(n) tests/fuzz/seeds-$(n) build-fuzz/fixture-seeds-$(n) > build-fuzz/$(n).log 2>&1; \
	  s=$$?; tail -4 build-fuzz/$(n).log; [ $$s = 0 ] || exit 1;)
fuzz-long:
	$(MAKE) fuzz FUZZ_SECONDS=600

clean:
	rm -rf build build-asan build-debug build-fuzz build-native

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# renders a report in headless Chromium and checks the screenshot (installs chromium on demand)
report-check: all
	scripts/report-check.sh
