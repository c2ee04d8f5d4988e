/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entry of the freestanding test guests.  msvmm enters here exactly as it
 * enters a Linux vmlinux: 64-bit long mode, identity-mapped, %rsi = zero page.
 * The handed-over state is recorded before anything disturbs it, so that
 * guests can check it; then guest_main runs on a stack of our own (the one
 * the VMM gave us sits in low memory we do not own) and its return value is
 * reported through the control device, which stops the VM.
 */
#define CTL_EXIT_ADDR	0xd0000008	/* MSVMM_CTL_BASE + MSVMM_CTL_EXIT */
#define STACK_SIZE	16384

	.section .text.start, "ax"
	.code64
	.globl _start
_start:
	/* Flags first: IF must still be as the VMM left it. */
	pushfq
	popq	entry_rflags(%rip)
	movq	%rsp, entry_rsp(%rip)
	movq	%rsi, entry_rsi(%rip)

	leaq	stack_top(%rip), %rsp
	xorl	%ebp, %ebp
	movq	%rsi, %rdi
	call	guest_main

	/* disp32 would sign-extend 0xd0000008: go through a register. */
	movl	$CTL_EXIT_ADDR, %ecx
	movl	%eax, (%rcx)
	/* Only reached if the VMM ignored the exit write. */
1:	cli
	hlt
	jmp	1b

/*
 * The compiler may emit calls to these even with -ffreestanding (struct
 * copies, zeroing loops), so a guest must provide them.  Byte loops, no
 * string instructions: the PVM emulator steps rep movsb one byte at a time
 * anyway, and this keeps them obviously correct.
 */
	.text
	.globl memcpy, memset, memmove, memcmp

/* void *memcpy(void *dst, const void *src, size_t n) */
memcpy:
	movq	%rdi, %rax
	testq	%rdx, %rdx
	jz	2f
1:	movb	(%rsi), %cl
	movb	%cl, (%rdi)
	incq	%rsi
	incq	%rdi
	decq	%rdx
	jnz	1b
2:	ret

/* void *memmove(void *dst, const void *src, size_t n) */
memmove:
	cmpq	%rsi, %rdi
	jbe	memcpy		/* dst below src: a forward copy is safe */
	movq	%rdi, %rax
	testq	%rdx, %rdx
	jz	2f
1:	movb	-1(%rsi,%rdx), %cl
	movb	%cl, -1(%rdi,%rdx)
	decq	%rdx
	jnz	1b
2:	ret

/* void *memset(void *dst, int c, size_t n) */
memset:
	movq	%rdi, %rax
	testq	%rdx, %rdx
	jz	2f
1:	movb	%sil, (%rdi)
	incq	%rdi
	decq	%rdx
	jnz	1b
2:	ret

/* int memcmp(const void *a, const void *b, size_t n) */
memcmp:
	xorl	%eax, %eax
	testq	%rdx, %rdx
	jz	2f
1:	movzbl	(%rdi), %eax
	movzbl	(%rsi), %ecx
	subl	%ecx, %eax
	jnz	2f
	incq	%rdi
	incq	%rsi
	decq	%rdx
	jnz	1b
2:	ret

	.bss
	.balign 16
	.globl entry_rflags, entry_rsp, entry_rsi
entry_rflags:	.quad 0
entry_rsp:	.quad 0
entry_rsi:	.quad 0
	.balign 16
stack:	.skip STACK_SIZE
stack_top:

	/* No executable stack wanted; silences ld's warning. */
	.section .note.GNU-stack, "", @progbits
