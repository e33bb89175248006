//! Compile a `.wat` or `.wasm` file to a Myriad artifact:
//! `cargo run -p myriad-codegen --example wat2so -- in.wat out.so [guard_bytes]`.

use myriad_codegen::{compile, CompileConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output, rest @ ..] = args.as_slice() else {
        return Err("usage: wat2so <in.wat|in.wasm> <out.so> [guard_bytes]".into());
    };
    let guard_bytes = match rest.first() {
        Some(g) => g.parse()?,
        None => 0,
    };
    let wasm = wat::parse_file(input)?;
    let so = compile(&wasm, &CompileConfig::guarded(guard_bytes))?;
    std::fs::write(output, so)?;
    Ok(())
}
