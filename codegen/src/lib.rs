//! WebAssembly to native code: a translator on Cranelift, the instance ABI
//! shared with the runtime, and the ahead-of-time artifact writer.

pub mod abi;
