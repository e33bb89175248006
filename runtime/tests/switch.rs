//! The raw context switch between two hand-made contexts.

use myriad_runtime::arch::{init_raw_frame, myriad_switch, switch_addr};

struct Ctx {
    main_sp: usize,
    co_sp: usize,
    count: u64,
}

unsafe extern "C" fn coroutine(arg: usize) -> ! {
    let ctx = arg as *mut Ctx;
    loop {
        // SAFETY: ctx outlives the coroutine's use (the test keeps it alive
        // and never resumes the coroutine after it is done).
        unsafe {
            (*ctx).count += 1;
            myriad_switch(&raw mut (*ctx).co_sp, (*ctx).main_sp);
        }
    }
}

fn stack(bytes: usize) -> *mut u8 {
    // SAFETY: fresh anonymous mapping.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p.cast()
}

core::arch::global_asm!(
    // check_preserved(save_sp, load_sp, switch) -> 1 if rbx, rbp, r12-r15
    // survive a switch round trip.
    ".text",
    ".globl t_check_preserved",
    "t_check_preserved:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rax, rdx",
    "mov rbx, 0x1111",
    "mov rbp, 0x2222",
    "mov r12, 0x3333",
    "mov r13, 0x4444",
    "mov r14, 0x5555",
    "mov r15, 0x6666",
    "sub rsp, 8",
    "call rax",
    "add rsp, 8",
    "xor eax, eax",
    "cmp rbx, 0x1111",
    "jne 1f",
    "cmp rbp, 0x2222",
    "jne 1f",
    "cmp r12, 0x3333",
    "jne 1f",
    "cmp r13, 0x4444",
    "jne 1f",
    "cmp r14, 0x5555",
    "jne 1f",
    "cmp r15, 0x6666",
    "jne 1f",
    "mov eax, 1",
    "1:",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
);

extern "C" {
    fn t_check_preserved(save_sp: *mut usize, load_sp: usize, switch: usize) -> u64;
}

#[test]
fn round_trip_preserves_callee_saved_and_counts() {
    let st = stack(64 * 1024);
    let mut ctx = Box::new(Ctx {
        main_sp: 0,
        co_sp: 0,
        count: 0,
    });
    let p: *mut Ctx = &mut *ctx;
    // SAFETY: the stack is ours and 16-byte aligned at its top.
    unsafe {
        (*p).co_sp = init_raw_frame(st as usize + 64 * 1024, coroutine, p as usize);
        for k in 1..=1000u64 {
            let ok = t_check_preserved(&raw mut (*p).main_sp, (*p).co_sp, switch_addr());
            assert_eq!(ok, 1, "callee-saved registers clobbered");
            assert_eq!((*p).count, k);
        }
        // Timing (informative).
        let n = 200_000;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            myriad_switch(&raw mut (*p).main_sp, (*p).co_sp);
        }
        let dt = t0.elapsed();
        eprintln!(
            "switch round trip: {:.1} ns",
            dt.as_nanos() as f64 / n as f64
        );
        assert_eq!((*p).count, 1000 + n);
    }
}
