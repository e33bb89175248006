//! Errors reported by [`crate::compile`] and [`crate::translate_to_clif`].

/// Why a module could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The bytes are not a valid WebAssembly module (parse or validation
    /// error from `wasmparser`). The message is the whole text:
    /// `invalid module: <what> at offset <n>`.
    #[error("{0}")]
    Invalid(String),
    /// The module is valid but uses something this compiler does not
    /// support. The message is the whole text and names the feature, e.g.
    /// `unsupported: table section`.
    #[error("{0}")]
    Unsupported(String),
    /// Cranelift failed to compile generated IR (a bug in the translator).
    #[error("code generation failed: {0}")]
    Codegen(String),
    /// Linking the shared object failed (see [`crate::compile`]'s linker).
    #[error("linking failed: {0}")]
    Link(String),
}

impl CompileError {
    /// An [`CompileError::Unsupported`] naming `what`.
    pub(crate) fn unsupported(what: impl Into<String>) -> Self {
        CompileError::Unsupported(format!("unsupported: {}", what.into()))
    }

    /// A [`CompileError::Codegen`] with `msg`.
    pub(crate) fn codegen(msg: impl Into<String>) -> Self {
        CompileError::Codegen(msg.into())
    }
}

impl From<wasmparser::BinaryReaderError> for CompileError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        CompileError::Invalid(format!(
            "invalid module: {} at offset {}",
            e.message(),
            e.offset()
        ))
    }
}
