#!/usr/bin/env python3
"""Emit x86-64 assembly for the fib kernel (benches/kernels/fib.wat) at a
chosen offset from a 64-byte boundary, in one of two shapes taken from
disassembly, each with or without a fuel check at function entry:

  wasmtime  Wasmtime 48's code with explicit bounds checks (its stack
            check through the runtime limits; two saved registers)
  myriad    Myriad's dense code (the stack check through the vmctx, three
            saved registers)

and a fuel check in one of three forms:

  check     `nop; add $-1,%r15; js slow` at entry (Myriad's, as
            fuel_rewrite leaves it)
  deferred  the unit charged at entry (`add $-1,%r15`, no branch) and the
            check (`test %r15,%r15; js slow`) only on the path that calls,
            after the base case's branch: leaf calls pass no check
  none      no check

The slow path refills r15 and jumps back, so a run can take it on
purpose (see fib.sh, WARM).

Usage: fib_shapes.py wasmtime|myriad check|deferred|none PAD > fib.S
The function is `long run(void *vmctx, long n, long fuel)`.
"""
import sys

MYRIAD = """
fib:
  push %rbp
  mov %rsp,%rbp
  mov 0x8(%rdi),%r10
  add $0x30,%r10
  cmp %rsp,%r10
  ja Ltrap
  sub $0x20,%rsp
  mov %rbx,(%rsp)
  mov %r12,0x8(%rsp)
  mov %r14,0x10(%rsp)
  mov %rdi,%rbx
{check}
  cmp $0x2,%rsi
  mov %rsi,%r14
  jb L1
  mov %r14,%rax
  mov %rax,%rsi
  sub $0x1,%rsi
  mov %rbx,%rdi
  call fib
  mov %r14,%rsi
  mov %rax,%r12
  sub $0x2,%rsi
  mov %rbx,%rdi
  call fib
  mov %r12,%rcx
  lea (%rcx,%rax,1),%rsi
  jmp L2
L1:
  mov %r14,%rsi
L2:
  mov %rsi,%rax
  mov (%rsp),%rbx
  mov 0x8(%rsp),%r12
  mov 0x10(%rsp),%r14
  add $0x20,%rsp
  mov %rbp,%rsp
  pop %rbp
  ret
"""

# Wasmtime's, with n in rsi as in Myriad's (Wasmtime passes it in rdx,
# after the callee and caller vmctx).
WASMTIME = """
fib:
  push %rbp
  mov %rsp,%rbp
  sub $0x10,%rsp
  mov %rbx,(%rsp)
  mov %r14,0x8(%rsp)
  mov 0x10(%rdi),%rax
  mov %rdi,%r14
  mov 0x8(%rax),%rax
  mov %rsp,%rcx
  cmp %rax,%rcx
  jb Ltrap
{check}
  cmp $0x2,%rsi
  mov %rsi,%rbx
  jb L1
  mov %rbx,%rax
  mov %rax,%rsi
  sub $0x1,%rsi
  mov %r14,%rdx
  mov %r14,%rdi
  call fib
  mov %rbx,%rsi
  mov %rax,%rbx
  sub $0x2,%rsi
  mov %r14,%rdx
  mov %rdx,%rdi
  call fib
  mov %rbx,%rcx
  add %rcx,%rax
  jmp L2
L1:
  mov %rbx,%rsi
  mov %rsi,%rax
L2:
  mov (%rsp),%rbx
  mov 0x8(%rsp),%r14
  add $0x10,%rsp
  mov %rbp,%rsp
  pop %rbp
  ret
"""

CHECK = """  .byte 0x66,0x0f,0x1f,0x84,0x00,0x00,0x00,0x00,0x00
  .byte 0x49,0x81,0xc7,0xff,0xff,0xff,0xff
  js Lslow
Lback:"""

CHARGE = "  .byte 0x49,0x81,0xc7,0xff,0xff,0xff,0xff"

DEFERRED_CHECK = """  test %r15,%r15
  js Lslow
Lback:
"""


def main():
    shapes = {"wasmtime": WASMTIME, "myriad": MYRIAD}
    checks = {"check": CHECK, "deferred": CHARGE, "none": "Lback:"}
    if len(sys.argv) != 4 or sys.argv[1] not in shapes or sys.argv[2] not in checks:
        sys.exit("usage: fib_shapes.py wasmtime|myriad check|deferred|none PAD")
    body = shapes[sys.argv[1]].replace("{check}", checks[sys.argv[2]])
    if sys.argv[2] == "deferred":
        body = body.replace("  jb L1\n", "  jb L1\n" + DEFERRED_CHECK, 1)
    pad = int(sys.argv[3])
    print(f"""  .text
  .globl run
  .p2align 6
run:
  push %r15
  push %rbx
  mov %rdx,%r15
  call fib
  pop %rbx
  pop %r15
  ret
  .p2align 6
  .fill {pad},1,0x90
{body}
Ltrap:
  ud2
Lslow:
  mov $0x7fffffffffff,%r15
  jmp Lback
  .section .note.GNU-stack,"",@progbits""")


main()
