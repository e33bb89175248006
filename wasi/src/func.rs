//! The preview1 function list: names and wasm signatures.

use myriad_abi::ValType;

/// The import module name of every function here.
pub const MODULE: &str = "wasi_snapshot_preview1";

const I: ValType = ValType::I32;
const L: ValType = ValType::I64;

/// One WASI preview1 function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WasiFunc {
    /// `args_get`: Write the argument pointers and strings.
    ArgsGet,
    /// `args_sizes_get`: Number of arguments and their total size.
    ArgsSizesGet,
    /// `environ_get`: Write the environment pointers and `KEY=VALUE` strings.
    EnvironGet,
    /// `environ_sizes_get`: Number of environment variables and their total size.
    EnvironSizesGet,
    /// `clock_res_get`: Resolution of a clock.
    ClockResGet,
    /// `clock_time_get`: Current time of a clock.
    ClockTimeGet,
    /// `fd_advise`: Advise about a file's access pattern.
    FdAdvise,
    /// `fd_allocate`: Reserve space in a file.
    FdAllocate,
    /// `fd_close`: Close a descriptor.
    FdClose,
    /// `fd_datasync`: Flush a file's data.
    FdDatasync,
    /// `fd_fdstat_get`: A descriptor's type, flags and rights.
    FdFdstatGet,
    /// `fd_fdstat_set_flags`: Change a descriptor's flags.
    FdFdstatSetFlags,
    /// `fd_fdstat_set_rights`: Drop rights from a descriptor.
    FdFdstatSetRights,
    /// `fd_filestat_get`: Attributes of an open file.
    FdFilestatGet,
    /// `fd_filestat_set_size`: Truncate or extend an open file.
    FdFilestatSetSize,
    /// `fd_filestat_set_times`: Set an open file's timestamps.
    FdFilestatSetTimes,
    /// `fd_pread`: Scatter read at an offset.
    FdPread,
    /// `fd_prestat_get`: Describe a preopened directory.
    FdPrestatGet,
    /// `fd_prestat_dir_name`: The guest path of a preopened directory.
    FdPrestatDirName,
    /// `fd_pwrite`: Gather write at an offset.
    FdPwrite,
    /// `fd_read`: Scatter read.
    FdRead,
    /// `fd_readdir`: Read directory entries.
    FdReaddir,
    /// `fd_renumber`: Move a descriptor to another number.
    FdRenumber,
    /// `fd_seek`: Move the file offset.
    FdSeek,
    /// `fd_sync`: Flush a file's data and metadata.
    FdSync,
    /// `fd_tell`: The file offset.
    FdTell,
    /// `fd_write`: Gather write.
    FdWrite,
    /// `path_create_directory`: Create a directory.
    PathCreateDirectory,
    /// `path_filestat_get`: Attributes of a file by path.
    PathFilestatGet,
    /// `path_filestat_set_times`: Set a file's timestamps by path.
    PathFilestatSetTimes,
    /// `path_link`: Create a hard link.
    PathLink,
    /// `path_open`: Open a file or directory.
    PathOpen,
    /// `path_readlink`: Read a symbolic link's target.
    PathReadlink,
    /// `path_remove_directory`: Remove an empty directory.
    PathRemoveDirectory,
    /// `path_rename`: Rename a file or directory.
    PathRename,
    /// `path_symlink`: Create a symbolic link.
    PathSymlink,
    /// `path_unlink_file`: Remove a file.
    PathUnlinkFile,
    /// `poll_oneoff`: Wait for clock or descriptor events.
    PollOneoff,
    /// `proc_exit`: Terminate the instance (no result).
    ProcExit,
    /// `proc_raise`: Send a signal to the instance (always `ENOSYS`).
    ProcRaise,
    /// `sched_yield`: Give up the rest of the time slice.
    SchedYield,
    /// `random_get`: Fill a buffer with random bytes.
    RandomGet,
    /// `sock_accept`: Accept a connection (always `ENOSYS`).
    SockAccept,
    /// `sock_recv`: Receive from a socket (always `ENOSYS`).
    SockRecv,
    /// `sock_send`: Send on a socket (always `ENOSYS`).
    SockSend,
    /// `sock_shutdown`: Shut a socket down (always `ENOSYS`).
    SockShutdown,
}

impl WasiFunc {
    /// Every function, in the order of the preview1 witx.
    pub const ALL: &'static [WasiFunc] = &[
        WasiFunc::ArgsGet,
        WasiFunc::ArgsSizesGet,
        WasiFunc::EnvironGet,
        WasiFunc::EnvironSizesGet,
        WasiFunc::ClockResGet,
        WasiFunc::ClockTimeGet,
        WasiFunc::FdAdvise,
        WasiFunc::FdAllocate,
        WasiFunc::FdClose,
        WasiFunc::FdDatasync,
        WasiFunc::FdFdstatGet,
        WasiFunc::FdFdstatSetFlags,
        WasiFunc::FdFdstatSetRights,
        WasiFunc::FdFilestatGet,
        WasiFunc::FdFilestatSetSize,
        WasiFunc::FdFilestatSetTimes,
        WasiFunc::FdPread,
        WasiFunc::FdPrestatGet,
        WasiFunc::FdPrestatDirName,
        WasiFunc::FdPwrite,
        WasiFunc::FdRead,
        WasiFunc::FdReaddir,
        WasiFunc::FdRenumber,
        WasiFunc::FdSeek,
        WasiFunc::FdSync,
        WasiFunc::FdTell,
        WasiFunc::FdWrite,
        WasiFunc::PathCreateDirectory,
        WasiFunc::PathFilestatGet,
        WasiFunc::PathFilestatSetTimes,
        WasiFunc::PathLink,
        WasiFunc::PathOpen,
        WasiFunc::PathReadlink,
        WasiFunc::PathRemoveDirectory,
        WasiFunc::PathRename,
        WasiFunc::PathSymlink,
        WasiFunc::PathUnlinkFile,
        WasiFunc::PollOneoff,
        WasiFunc::ProcExit,
        WasiFunc::ProcRaise,
        WasiFunc::SchedYield,
        WasiFunc::RandomGet,
        WasiFunc::SockAccept,
        WasiFunc::SockRecv,
        WasiFunc::SockSend,
        WasiFunc::SockShutdown,
    ];

    /// The function imported as `name` from [`MODULE`], if there is one.
    pub fn lookup(name: &str) -> Option<WasiFunc> {
        Some(match name {
            "args_get" => WasiFunc::ArgsGet,
            "args_sizes_get" => WasiFunc::ArgsSizesGet,
            "environ_get" => WasiFunc::EnvironGet,
            "environ_sizes_get" => WasiFunc::EnvironSizesGet,
            "clock_res_get" => WasiFunc::ClockResGet,
            "clock_time_get" => WasiFunc::ClockTimeGet,
            "fd_advise" => WasiFunc::FdAdvise,
            "fd_allocate" => WasiFunc::FdAllocate,
            "fd_close" => WasiFunc::FdClose,
            "fd_datasync" => WasiFunc::FdDatasync,
            "fd_fdstat_get" => WasiFunc::FdFdstatGet,
            "fd_fdstat_set_flags" => WasiFunc::FdFdstatSetFlags,
            "fd_fdstat_set_rights" => WasiFunc::FdFdstatSetRights,
            "fd_filestat_get" => WasiFunc::FdFilestatGet,
            "fd_filestat_set_size" => WasiFunc::FdFilestatSetSize,
            "fd_filestat_set_times" => WasiFunc::FdFilestatSetTimes,
            "fd_pread" => WasiFunc::FdPread,
            "fd_prestat_get" => WasiFunc::FdPrestatGet,
            "fd_prestat_dir_name" => WasiFunc::FdPrestatDirName,
            "fd_pwrite" => WasiFunc::FdPwrite,
            "fd_read" => WasiFunc::FdRead,
            "fd_readdir" => WasiFunc::FdReaddir,
            "fd_renumber" => WasiFunc::FdRenumber,
            "fd_seek" => WasiFunc::FdSeek,
            "fd_sync" => WasiFunc::FdSync,
            "fd_tell" => WasiFunc::FdTell,
            "fd_write" => WasiFunc::FdWrite,
            "path_create_directory" => WasiFunc::PathCreateDirectory,
            "path_filestat_get" => WasiFunc::PathFilestatGet,
            "path_filestat_set_times" => WasiFunc::PathFilestatSetTimes,
            "path_link" => WasiFunc::PathLink,
            "path_open" => WasiFunc::PathOpen,
            "path_readlink" => WasiFunc::PathReadlink,
            "path_remove_directory" => WasiFunc::PathRemoveDirectory,
            "path_rename" => WasiFunc::PathRename,
            "path_symlink" => WasiFunc::PathSymlink,
            "path_unlink_file" => WasiFunc::PathUnlinkFile,
            "poll_oneoff" => WasiFunc::PollOneoff,
            "proc_exit" => WasiFunc::ProcExit,
            "proc_raise" => WasiFunc::ProcRaise,
            "sched_yield" => WasiFunc::SchedYield,
            "random_get" => WasiFunc::RandomGet,
            "sock_accept" => WasiFunc::SockAccept,
            "sock_recv" => WasiFunc::SockRecv,
            "sock_send" => WasiFunc::SockSend,
            "sock_shutdown" => WasiFunc::SockShutdown,
            _ => return None,
        })
    }

    /// The import field name.
    pub fn name(self) -> &'static str {
        match self {
            WasiFunc::ArgsGet => "args_get",
            WasiFunc::ArgsSizesGet => "args_sizes_get",
            WasiFunc::EnvironGet => "environ_get",
            WasiFunc::EnvironSizesGet => "environ_sizes_get",
            WasiFunc::ClockResGet => "clock_res_get",
            WasiFunc::ClockTimeGet => "clock_time_get",
            WasiFunc::FdAdvise => "fd_advise",
            WasiFunc::FdAllocate => "fd_allocate",
            WasiFunc::FdClose => "fd_close",
            WasiFunc::FdDatasync => "fd_datasync",
            WasiFunc::FdFdstatGet => "fd_fdstat_get",
            WasiFunc::FdFdstatSetFlags => "fd_fdstat_set_flags",
            WasiFunc::FdFdstatSetRights => "fd_fdstat_set_rights",
            WasiFunc::FdFilestatGet => "fd_filestat_get",
            WasiFunc::FdFilestatSetSize => "fd_filestat_set_size",
            WasiFunc::FdFilestatSetTimes => "fd_filestat_set_times",
            WasiFunc::FdPread => "fd_pread",
            WasiFunc::FdPrestatGet => "fd_prestat_get",
            WasiFunc::FdPrestatDirName => "fd_prestat_dir_name",
            WasiFunc::FdPwrite => "fd_pwrite",
            WasiFunc::FdRead => "fd_read",
            WasiFunc::FdReaddir => "fd_readdir",
            WasiFunc::FdRenumber => "fd_renumber",
            WasiFunc::FdSeek => "fd_seek",
            WasiFunc::FdSync => "fd_sync",
            WasiFunc::FdTell => "fd_tell",
            WasiFunc::FdWrite => "fd_write",
            WasiFunc::PathCreateDirectory => "path_create_directory",
            WasiFunc::PathFilestatGet => "path_filestat_get",
            WasiFunc::PathFilestatSetTimes => "path_filestat_set_times",
            WasiFunc::PathLink => "path_link",
            WasiFunc::PathOpen => "path_open",
            WasiFunc::PathReadlink => "path_readlink",
            WasiFunc::PathRemoveDirectory => "path_remove_directory",
            WasiFunc::PathRename => "path_rename",
            WasiFunc::PathSymlink => "path_symlink",
            WasiFunc::PathUnlinkFile => "path_unlink_file",
            WasiFunc::PollOneoff => "poll_oneoff",
            WasiFunc::ProcExit => "proc_exit",
            WasiFunc::ProcRaise => "proc_raise",
            WasiFunc::SchedYield => "sched_yield",
            WasiFunc::RandomGet => "random_get",
            WasiFunc::SockAccept => "sock_accept",
            WasiFunc::SockRecv => "sock_recv",
            WasiFunc::SockSend => "sock_send",
            WasiFunc::SockShutdown => "sock_shutdown",
        }
    }

    /// The wasm parameter types (`I32` for pointers, lengths, descriptors
    /// and flags; `I64` for 64-bit sizes, offsets, times and rights).
    pub fn params(self) -> &'static [ValType] {
        match self {
            WasiFunc::ArgsGet => &[I, I],
            WasiFunc::ArgsSizesGet => &[I, I],
            WasiFunc::EnvironGet => &[I, I],
            WasiFunc::EnvironSizesGet => &[I, I],
            WasiFunc::ClockResGet => &[I, I],
            WasiFunc::ClockTimeGet => &[I, L, I],
            WasiFunc::FdAdvise => &[I, L, L, I],
            WasiFunc::FdAllocate => &[I, L, L],
            WasiFunc::FdClose => &[I],
            WasiFunc::FdDatasync => &[I],
            WasiFunc::FdFdstatGet => &[I, I],
            WasiFunc::FdFdstatSetFlags => &[I, I],
            WasiFunc::FdFdstatSetRights => &[I, L, L],
            WasiFunc::FdFilestatGet => &[I, I],
            WasiFunc::FdFilestatSetSize => &[I, L],
            WasiFunc::FdFilestatSetTimes => &[I, L, L, I],
            WasiFunc::FdPread => &[I, I, I, L, I],
            WasiFunc::FdPrestatGet => &[I, I],
            WasiFunc::FdPrestatDirName => &[I, I, I],
            WasiFunc::FdPwrite => &[I, I, I, L, I],
            WasiFunc::FdRead => &[I, I, I, I],
            WasiFunc::FdReaddir => &[I, I, I, L, I],
            WasiFunc::FdRenumber => &[I, I],
            WasiFunc::FdSeek => &[I, L, I, I],
            WasiFunc::FdSync => &[I],
            WasiFunc::FdTell => &[I, I],
            WasiFunc::FdWrite => &[I, I, I, I],
            WasiFunc::PathCreateDirectory => &[I, I, I],
            WasiFunc::PathFilestatGet => &[I, I, I, I, I],
            WasiFunc::PathFilestatSetTimes => &[I, I, I, I, L, L, I],
            WasiFunc::PathLink => &[I, I, I, I, I, I, I],
            WasiFunc::PathOpen => &[I, I, I, I, I, L, L, I, I],
            WasiFunc::PathReadlink => &[I, I, I, I, I, I],
            WasiFunc::PathRemoveDirectory => &[I, I, I],
            WasiFunc::PathRename => &[I, I, I, I, I, I],
            WasiFunc::PathSymlink => &[I, I, I, I, I],
            WasiFunc::PathUnlinkFile => &[I, I, I],
            WasiFunc::PollOneoff => &[I, I, I, I],
            WasiFunc::ProcExit => &[I],
            WasiFunc::ProcRaise => &[I],
            WasiFunc::SchedYield => &[],
            WasiFunc::RandomGet => &[I, I],
            WasiFunc::SockAccept => &[I, I, I],
            WasiFunc::SockRecv => &[I, I, I, I, I, I],
            WasiFunc::SockSend => &[I, I, I, I, I],
            WasiFunc::SockShutdown => &[I, I],
        }
    }

    /// The wasm result types: `[I32]` (the errno) for every function but
    /// `proc_exit`, which returns nothing.
    pub fn results(self) -> &'static [ValType] {
        match self {
            WasiFunc::ProcExit => &[],
            _ => &[I],
        }
    }
}
