//! Everything architecture-specific in assembly: the context switch, the
//! entry of a fresh instance, the trampolines that run builtins and host
//! functions on the worker stack, and the signal-context fields the fault
//! handler reads and rewrites. One module per architecture; x86-64 Linux is
//! the only one (the crate refuses to build elsewhere).
//!
//! The trampolines name their Rust callees (the fuel slow path, the
//! builtins, the host-import dispatcher) directly, so this module sits
//! above those in the crate's layers and below the instance code that
//! switches into guests.

mod x86_64;

pub use x86_64::*;

#[cfg(test)]
mod tests {
    use super::x86_64::in_counter_window;

    /// `in_counter_window` over `code` from offset `at`.
    fn window(code: &[u8], at: usize) -> bool {
        let pc = code.as_ptr() as usize + at;
        // SAFETY: the range lies within `code`.
        unsafe { in_counter_window(pc, code.as_ptr() as usize + code.len()) }
    }

    #[test]
    fn a_counter_window_is_told_from_the_code_around_it() {
        // A loop's check as Cranelift emits it (from a compiled module):
        //  0: add $0x1,%r9            (7 bytes)
        //  7: cmp %rsi,%r9            (3)
        // 10: mov %r15,%rcx           (3)  <- the copy
        // 13: add $-2,%rcx            (7)
        // 20: mov %rcx,%r15           (3)  <- the write back
        // 23: mov %r10,%rcx           (3)
        let code = [
            0x49, 0x81, 0xC1, 0x01, 0x00, 0x00, 0x00, 0x4C, 0x3B, 0xCE, 0x4C, 0x89, 0xF9, 0x48,
            0x81, 0xC1, 0xFE, 0xFF, 0xFF, 0xFF, 0x49, 0x89, 0xCF, 0x4C, 0x89, 0xD1,
        ];
        assert!(!window(&code, 0), "before the copy");
        assert!(!window(&code, 7), "before the copy");
        assert!(!window(&code, 10), "at the copy (not yet run)");
        assert!(window(&code, 13), "after the copy");
        assert!(window(&code, 20), "at the write back (not yet run)");
        assert!(!window(&code, 23), "after the write back");
        // The same with `lea` and the 8B encodings of both moves.
        let code = [
            0x4D, 0x8B, 0xC7, // mov %r15,%r8 (8B /r)
            0x4D, 0x8D, 0x48, 0xFC, // lea -4(%r8),%r9
            0x4D, 0x8B, 0xF9, // mov %r9,%r15 (8B /r)
            0x90,
        ];
        assert!(!window(&code, 0));
        assert!(window(&code, 3));
        assert!(window(&code, 7));
        assert!(!window(&code, 10));
        // The copy stored to exec.fuel before a builtin call and reloaded
        // after it (from a compiled module; review 15): inside from the
        // copy to the reload.
        let code = [
            0x4C, 0x89, 0xF8, // 0: mov %r15,%rax      <- the copy
            0x49, 0x8B, 0xB4, 0x24, 0x98, 0x00, 0x00, 0x00, // 3: mov 0x98(%r12),%rsi
            0x48, 0x89, 0x06, // 11: mov %rax,(%rsi)
            0x48, 0x89, 0xF2, // 14: mov %rsi,%rdx
            0x49, 0x8B, 0x4C, 0x24, 0x40, // 17: mov 0x40(%r12),%rcx
            0x4C, 0x89, 0xE7, // 22: mov %r12,%rdi
            0xFF, 0xD1, // 25: call *%rcx
            0x48, 0x8B, 0x0B, // 27: mov (%rbx),%rcx
            0x49, 0x89, 0xCF, // 30: mov %rcx,%r15      <- the reload
            0x90,
        ];
        assert!(!window(&code, 0));
        assert!(window(&code, 3), "between the copy and its store");
        assert!(window(&code, 27));
        assert!(!window(&code, 33));
        // A check rewritten to one instruction has no window.
        let code = [
            0x49, 0x81, 0xC7, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x88, 0, 0, 0, 0,
        ];
        for at in 0..code.len() {
            assert!(!window(&code, at));
        }
    }
}
