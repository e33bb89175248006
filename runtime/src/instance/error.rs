//! Why an instance could not be created, or a call armed or unparked.

use myriad_abi::ValType;

/// Why an instance could not be created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstantiateError {
    /// The module exports no function of that name.
    #[error("the module has no exported function named {0:?}")]
    NoSuchExport(String),
    /// Wrong number of arguments.
    #[error("export {export:?} takes {expected} arguments, {given} given")]
    ArgumentCount {
        /// The export.
        export: String,
        /// Parameters declared.
        expected: usize,
        /// Arguments given.
        given: usize,
    },
    /// An argument has the wrong type.
    #[error("argument {index} of export {export:?} must be {expected:?}, got {given:?}")]
    ArgumentType {
        /// The export.
        export: String,
        /// Argument position.
        index: usize,
        /// Declared type.
        expected: ValType,
        /// Given type.
        given: ValType,
    },
    /// No free slot.
    #[error("the region is full (all slots in use)")]
    RegionFull,
    /// The module's initial memory does not fit a slot.
    #[error("the module needs {needed} bytes of initial memory; a slot holds {capacity}")]
    MemoryTooLarge {
        /// Initial memory bytes.
        needed: u64,
        /// Slot heap capacity.
        capacity: u64,
    },
    /// The module's guard assumptions do not hold in this region.
    #[error("{0}")]
    GuardMismatch(String),
    /// A data segment lies outside the initial memory.
    #[error("data segment {index} ({len} bytes at {offset}) does not fit the initial memory of {memory} bytes")]
    DataSegmentOutOfBounds {
        /// Segment index.
        index: usize,
        /// Offset in memory.
        offset: u64,
        /// Length.
        len: usize,
        /// Initial memory bytes.
        memory: u64,
    },
    /// An active element segment lies outside its table.
    #[error("element segment {index} does not fit its table (out of bounds table access)")]
    ElemSegmentOutOfBounds {
        /// Segment index.
        index: usize,
    },
    /// The module's tables together start with more elements than the
    /// runtime allows ([`crate::table::MAX_TABLE_ELEMENTS`]).
    #[error("tables of {0} elements in all are larger than the runtime allows (10,000,000)")]
    TableTooLarge(u64),
    /// Guard-mode protection change failed.
    #[error("cannot open heap pages: {0}")]
    Protect(String),
    /// The instance links groups of instances that both run code now on
    /// this thread (one resumed from a host function of the other): their
    /// code cannot follow two green threads at once. Instantiate it when
    /// at most one of them runs.
    #[error("cannot link instances of two groups that are both running")]
    LinkedGroupsRunning,
    /// The instance links to a group another thread runs, and that thread
    /// waits, directly or through others, for a group this thread runs
    /// (two host functions on two threads, each instantiating a module
    /// linked to the other's group): waiting would deadlock.
    #[error("cannot link to a group another thread runs while it waits for one this thread runs (deadlock)")]
    LinkWouldDeadlock,
    /// [`super::Instance::call`] while the previous call is suspended (`Yielded`).
    #[error("a call is in progress (suspended); resume it to completion first")]
    CallInProgress,
    /// A non-null `funcref` the host passed in (a call argument or a parked
    /// host function's result) is not one of this instance's own function
    /// references. The host can pass null or a reference this instance
    /// produced; anything else would be a forged code pointer.
    #[error("value {index} is a function reference that does not belong to this instance")]
    ForeignFuncRef {
        /// Position of the value among the arguments or results.
        index: usize,
    },
    /// The number of import values differs from the module's imports.
    #[error("the module has {expected} imports, {given} values were given")]
    ImportCount {
        /// Imports declared.
        expected: usize,
        /// Values given.
        given: usize,
    },
    /// An import value does not match the import's type.
    #[error("incompatible import type for {module}.{name}: {reason}")]
    IncompatibleImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// What differs.
        reason: String,
    },
    /// An export wrapper or a host-import stub has a frame (it grows with
    /// the function's parameters and results) that cannot fit the slot's
    /// stack even when nothing else is on it, so every call of it would
    /// overflow.
    #[error(
        "{what} needs {needed} bytes of stack for its parameters and results, but a slot's \
         stack has {available} usable bytes; use a larger stack size"
    )]
    StackTooSmall {
        /// The export or import.
        what: String,
        /// Bytes its frame needs.
        needed: usize,
        /// Usable bytes of the slot's stack (the stack size less
        /// [`crate::region::STACK_RESERVE`]).
        available: usize,
    },
    /// [`super::Instance::unpark`] on an instance that is not parked.
    #[error("the instance is not parked")]
    NotParked,
    /// [`super::Instance::unpark`] with values that do not fit the parked host
    /// function's results.
    #[error("unpark: {0}")]
    UnparkValues(String),
}
