# SPDX-License-Identifier: Apache-2.0
# msvmm: `make` builds everything, `make check` runs every test, `make run`
# runs a one-off sandbox, `make bench` prints boot comparisons against QEMU.

CC ?= cc
BUILD ?= build
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	-Wno-unused-parameter -fno-strict-aliasing -MMD -MP
CFLAGS ?= -O2 -g
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS) -Ilib -Ivmm -Idevices
LIBS := -lelf -lz -lpthread
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

LIB_SRCS := $(wildcard lib/*.c vmm/*.c devices/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
SAN_OBJS := $(LIB_SRCS:%.c=$(BUILD)/san/%.o)
TEST_SRCS := $(wildcard tests/unit/test_*.c)
TESTS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
SAN_TESTS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests-san/%)
GUEST_SRCS := $(wildcard tests/guests/*.c)
GUESTS := $(GUEST_SRCS:tests/guests/%.c=$(BUILD)/guests/%.elf)

.PHONY: all deps lib kernel images check unit unit-san e2e run bench clean
all: deps lib $(BUILD)/bin/msx kernel images

deps:
	@bash tests/deps.sh

lib: $(BUILD)/lib/libmsvmm.a $(BUILD)/include/msvmm.h

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(BUILD)/lib/libmsvmm.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lib/libmsvmm-san.a: $(SAN_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/include/msvmm.h: lib/msvmm.h
	@mkdir -p $(dir $@)
	cp $< $@

$(BUILD)/bin/msx: $(BUILD)/obj/cli/msx.o $(BUILD)/obj/cli/msx_args.o $(BUILD)/lib/libmsvmm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# guest-init: static PID 1 (with the vsock agent and the protocol codec it
# shares with the library), and the host tool that packs initramfs images.
GUEST_INIT_SRCS := guest-init/init.c guest-init/agent.c guest-init/runtime.c lib/agent_proto.c
# A restored sandbox's clock and RNG (the agent's S record).
GUEST_INIT_SRCS += guest-init/restored.c
$(BUILD)/guest/init: $(GUEST_INIT_SRCS) guest-init/restored.h guest-init/agent.h guest-init/runtime.h guest-init/runtime_python.py \
		lib/agent_proto.h devices/ctl.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Os -static -Idevices -Ilib -o $@ \
		$(GUEST_INIT_SRCS)

$(BUILD)/bin/msvmm-mkinitramfs: $(BUILD)/obj/guest-init/mkinitramfs.o $(BUILD)/lib/libmsvmm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

kernel:
	@bash guest-init/kernel/build.sh $(BUILD)/share/msvmm

images: $(BUILD)/guest/init $(BUILD)/bin/msvmm-mkinitramfs
	@INIT_BIN=$(BUILD)/guest/init MKINITRAMFS=$(BUILD)/bin/msvmm-mkinitramfs \
		bash guest-init/images/build.sh $(BUILD)/share/msvmm/images
	@# What msvmm_image_build() runs: the recipe script and the two binaries it packs.
	@mkdir -p $(BUILD)/share/msvmm/libexec
	@cp guest-init/images/build.sh $(BUILD)/share/msvmm/libexec/msvmm-image-build
	@cp $(BUILD)/guest/init $(BUILD)/share/msvmm/libexec/init
	@cp $(BUILD)/bin/msvmm-mkinitramfs $(BUILD)/share/msvmm/libexec/msvmm-mkinitramfs

# Freestanding test guests: tiny kernels run at CPL0 through the real loaders.
$(BUILD)/guests/%.elf: tests/guests/%.c $(wildcard tests/guests/*.h) tests/guests/guest.ld tests/guests/start.S
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -ffreestanding -fno-pic -no-pie -nostdlib \
		-mno-red-zone -mno-sse -mgeneral-regs-only -fno-stack-protector -fcf-protection=none \
		-Wl,-T,tests/guests/guest.ld -Wl,--build-id=none -Idevices -o $@ tests/guests/start.S $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/lib/libmsvmm.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/lib/libmsvmm.a $(LIBS) $(CHECK_LIBS)

$(BUILD)/tests-san/%: tests/unit/%.c $(BUILD)/lib/libmsvmm-san.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -Itests/unit -o $@ $< $(BUILD)/lib/libmsvmm-san.a $(LIBS) $(CHECK_LIBS)

# Tests that link the guest agent (and its runtimes), which is not part of the library.
AGENT_TESTS := test_agent_session test_exec_agent test_vsock_agent test_runcode
AGENT_OBJS := guest-init/agent.o guest-init/runtime.o guest-init/restored.o
$(AGENT_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: tests/unit/%.c \
		$(AGENT_OBJS:%=$(BUILD)/obj/%) $(BUILD)/lib/libmsvmm.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iguest-init -Itests/unit -o $@ $< $(AGENT_OBJS:%=$(BUILD)/obj/%) \
		$(BUILD)/lib/libmsvmm.a $(LIBS) $(CHECK_LIBS)

$(AGENT_TESTS:%=$(BUILD)/tests-san/%): $(BUILD)/tests-san/%: tests/unit/%.c \
		$(AGENT_OBJS:%=$(BUILD)/san/%) $(BUILD)/lib/libmsvmm-san.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -Iguest-init -Itests/unit -o $@ $< \
		$(AGENT_OBJS:%=$(BUILD)/san/%) $(BUILD)/lib/libmsvmm-san.a $(LIBS) $(CHECK_LIBS)

# The python driver is built into runtime.o (.incbin), which -MMD does not see.
$(BUILD)/obj/guest-init/runtime.o $(BUILD)/san/guest-init/runtime.o: guest-init/runtime_python.py

# The end-to-end sandbox test (run by tests/e2e/run.sh) uses only the public API.
$(BUILD)/tests-e2e/sandbox: tests/e2e/sandbox.c tests/e2e/gen.h $(BUILD)/lib/libmsvmm.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -Itests/e2e -o $@ $< $(BUILD)/lib/libmsvmm.a $(LIBS) $(CHECK_LIBS)

# Snapshots through the public API (run by tests/e2e/run.sh).
$(BUILD)/tests-e2e/snapshot: tests/e2e/snapshot.c $(BUILD)/lib/libmsvmm.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/lib/libmsvmm.a $(LIBS) $(CHECK_LIBS)

# bench/blk.sh's runner for its test-guest kernel (no agent there for msx).
$(BUILD)/bin/msvmm-vmrun: bench/vmrun.c $(BUILD)/lib/libmsvmm.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/lib/libmsvmm.a $(LIBS)

# bench/exec.sh's timer: first output byte of a command, vsock latency and throughput.
$(BUILD)/bin/msvmm-execbench: bench/execbench.c tests/e2e/gen.h $(BUILD)/lib/libmsvmm.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/e2e -o $@ $< $(BUILD)/lib/libmsvmm.a $(LIBS)

unit: $(TESTS) $(GUESTS)
	@bash tests/run-unit.sh $(BUILD)/tests

unit-san: $(SAN_TESTS) $(GUESTS)
	@bash tests/run-unit.sh $(BUILD)/tests-san

e2e: all $(BUILD)/tests-e2e/sandbox $(BUILD)/tests-e2e/snapshot
	@bash tests/e2e/run.sh $(BUILD)

# The unit tests that boot guests: where /dev/kvm is missing, `make check`
# runs them (and e2e) in a nested KVM under QEMU's emulation; NESTED=0 skips.
GUEST_TESTS := test_guests test_vblk_guests test_vsock_guests

NESTED ?= 1

check: deps all $(TESTS) $(SAN_TESTS) $(GUESTS) $(BUILD)/tests-e2e/sandbox $(BUILD)/tests-e2e/snapshot
	@NESTED=$(NESTED) bash tests/check.sh $(BUILD) $(GUEST_TESTS)

RUN_CMD := $(BUILD)/bin/msx busybox -- echo hello from a microVM
run: all
	@if [ -e /dev/kvm ] || [ "$(NESTED)" = 0 ]; then $(RUN_CMD); else \
		echo "run: no /dev/kvm here: running it in a nested KVM under QEMU's emulation (slow)"; \
		bash tests/nested/run.sh "$(RUN_CMD)"; fi

bench: all $(BUILD)/bin/msvmm-execbench $(BUILD)/bin/msvmm-vmrun
	@bash bench/boot.sh $(BUILD)
	@bash bench/blk.sh $(BUILD)
	@bash bench/exec.sh $(BUILD)
	@bash bench/snapshot.sh $(BUILD)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/san $(BUILD)/tests $(BUILD)/tests-san -name '*.d' 2>/dev/null)
