#!/usr/bin/env python3
"""Emit x86-64 assembly for the sieve kernel (benches/kernels/sieve.wat) with
its hot loops at a chosen offset from a 64-byte boundary, in one of three
shapes taken from disassembly:

  wasmtime  Wasmtime 48's default code (no interruption check)
  checked   the same loops with a fuel decrement, test and branch at each
            loop header (the check Myriad compiles), no register copies
  myriad    Myriad's code as Cranelift allocates it today: the check plus
            the register copies around it

Usage: sieve_loops.py SHAPE PAD > sieve.S   (see run.sh)
The function is `long sieve(unsigned char *mem, long reps)`; fuel starts
high enough never to run out, so the slow path (ud2) is never taken.
"""
import sys

WASMTIME = """
Louter:
  mov %ecx,%eax
  movzbq (%rdi,%rax,1),%rax
  test %eax,%eax
  je Lnext
  mov %rcx,%r9
  imul %ecx,%r9d
Linner:
  cmp $0x10000,%r9d
  jae Linner_done
  xor %eax,%eax
  mov %r9d,%r8d
  mov %al,(%rdi,%r8,1)
  add %ecx,%r9d
  jmp Linner
Linner_done:
  add $1,%rbx
Lnext:
  add $1,%ecx
  cmp $0x10000,%ecx
  jb Louter
"""

CHECKED = """
Louter:
  test %rsi,%rsi
  jle Lslow
  mov %ecx,%eax
  movzbq (%rdi,%rax,1),%rax
  test %eax,%eax
  jne Lprime
  add $-1,%rsi
  jmp Lnext
Lprime:
  add $-1,%rsi
  mov %rcx,%r9
  imul %ecx,%r9d
Linner:
  test %rsi,%rsi
  jle Lslow
  cmp $0x10000,%r9d
  jae Linner_done
  xor %eax,%eax
  mov %r9d,%r8d
  mov %al,(%rdi,%r8,1)
  add $-1,%rsi
  add %ecx,%r9d
  jmp Linner
Linner_done:
  add $-1,%rsi
  add $1,%rbx
Lnext:
  add $1,%ecx
  cmp $0x10000,%ecx
  jb Louter
"""

MYRIAD = """
Louter:
  add $-1,%rax
  mov %rax,%rsi
  mov %rax,%r8
  test %rsi,%rax
  jl Lslow
  mov %ecx,%eax
  movzbq (%rdi,%rax,1),%rax
  test %eax,%eax
  je Lnext
  mov %rcx,%rsi
  imul %ecx,%esi
  mov %r8,%rax
Linner:
  add $-1,%rax
  mov %rax,%rdx
  mov %rax,%r8
  test %rdx,%rax
  jl Lslow
  cmp $0x10000,%esi
  jae Linner_done
  xor %eax,%eax
  mov %esi,%edx
  mov %al,(%rdi,%rdx,1)
  add %ecx,%esi
  mov %r8,%rax
  jmp Linner
Linner_done:
  add $1,%rbx
Lnext:
  add $1,%ecx
  cmp $0x10000,%ecx
  jae Lout
  mov %r8,%rax
  jmp Louter
Lout:
"""

def main():
    shapes = {"wasmtime": WASMTIME, "checked": CHECKED, "myriad": MYRIAD}
    if len(sys.argv) != 3 or sys.argv[1] not in shapes:
        sys.exit("usage: sieve_loops.py wasmtime|checked|myriad PAD")
    body = shapes[sys.argv[1]]
    pad = int(sys.argv[2])
    print(f"""  .text
  .globl sieve
  .p2align 6
sieve:
  push %rbx
  push %r12
  mov %rsi,%r12
Lrep:
  test %r12,%r12
  je Ldone
  sub $1,%r12
  push %rdi
  mov $1,%esi
  mov $65536,%edx
  call memset
  pop %rdi
  mov $0x7fffffffffff,%rsi
  mov %rsi,%rax
  mov %rsi,%r8
  xor %rbx,%rbx
  mov $2,%ecx
  jmp Louter
  .p2align 6
  .fill {pad},1,0x90
{body}
  jmp Lrep
Ldone:
  mov %rbx,%rax
  pop %r12
  pop %rbx
  ret
Lslow:
  ud2
  .section .note.GNU-stack,"",@progbits""")

main()
