//! WASI preview1 error numbers and the mapping from host `errno` values.

use std::fmt;

/// A WASI preview1 `errno` value (0 is success). Host functions return it as
/// their single `i32` result.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub u16);

impl Errno {
    /// No error.
    pub const SUCCESS: Errno = Errno(0);
    /// `E2BIG` (argument list too long)
    pub const TOOBIG: Errno = Errno(1);
    /// `EACCES`
    pub const ACCES: Errno = Errno(2);
    /// `EADDRINUSE`
    pub const ADDRINUSE: Errno = Errno(3);
    /// `EADDRNOTAVAIL`
    pub const ADDRNOTAVAIL: Errno = Errno(4);
    /// `EAFNOSUPPORT`
    pub const AFNOSUPPORT: Errno = Errno(5);
    /// `EAGAIN`
    pub const AGAIN: Errno = Errno(6);
    /// `EALREADY`
    pub const ALREADY: Errno = Errno(7);
    /// `EBADF`
    pub const BADF: Errno = Errno(8);
    /// `EBADMSG`
    pub const BADMSG: Errno = Errno(9);
    /// `EBUSY`
    pub const BUSY: Errno = Errno(10);
    /// `ECANCELED`
    pub const CANCELED: Errno = Errno(11);
    /// `ECHILD`
    pub const CHILD: Errno = Errno(12);
    /// `ECONNABORTED`
    pub const CONNABORTED: Errno = Errno(13);
    /// `ECONNREFUSED`
    pub const CONNREFUSED: Errno = Errno(14);
    /// `ECONNRESET`
    pub const CONNRESET: Errno = Errno(15);
    /// `EDEADLK`
    pub const DEADLK: Errno = Errno(16);
    /// `EDESTADDRREQ`
    pub const DESTADDRREQ: Errno = Errno(17);
    /// `EDOM`
    pub const DOM: Errno = Errno(18);
    /// `EDQUOT`
    pub const DQUOT: Errno = Errno(19);
    /// `EEXIST`
    pub const EXIST: Errno = Errno(20);
    /// `EFAULT`
    pub const FAULT: Errno = Errno(21);
    /// `EFBIG`
    pub const FBIG: Errno = Errno(22);
    /// `EHOSTUNREACH`
    pub const HOSTUNREACH: Errno = Errno(23);
    /// `EIDRM`
    pub const IDRM: Errno = Errno(24);
    /// `EILSEQ`
    pub const ILSEQ: Errno = Errno(25);
    /// `EINPROGRESS`
    pub const INPROGRESS: Errno = Errno(26);
    /// `EINTR`
    pub const INTR: Errno = Errno(27);
    /// `EINVAL`
    pub const INVAL: Errno = Errno(28);
    /// `EIO`
    pub const IO: Errno = Errno(29);
    /// `EISCONN`
    pub const ISCONN: Errno = Errno(30);
    /// `EISDIR`
    pub const ISDIR: Errno = Errno(31);
    /// `ELOOP`
    pub const LOOP: Errno = Errno(32);
    /// `EMFILE`
    pub const MFILE: Errno = Errno(33);
    /// `EMLINK`
    pub const MLINK: Errno = Errno(34);
    /// `EMSGSIZE`
    pub const MSGSIZE: Errno = Errno(35);
    /// `EMULTIHOP`
    pub const MULTIHOP: Errno = Errno(36);
    /// `ENAMETOOLONG`
    pub const NAMETOOLONG: Errno = Errno(37);
    /// `ENETDOWN`
    pub const NETDOWN: Errno = Errno(38);
    /// `ENETRESET`
    pub const NETRESET: Errno = Errno(39);
    /// `ENETUNREACH`
    pub const NETUNREACH: Errno = Errno(40);
    /// `ENFILE`
    pub const NFILE: Errno = Errno(41);
    /// `ENOBUFS`
    pub const NOBUFS: Errno = Errno(42);
    /// `ENODEV`
    pub const NODEV: Errno = Errno(43);
    /// `ENOENT`
    pub const NOENT: Errno = Errno(44);
    /// `ENOEXEC`
    pub const NOEXEC: Errno = Errno(45);
    /// `ENOLCK`
    pub const NOLCK: Errno = Errno(46);
    /// `ENOLINK`
    pub const NOLINK: Errno = Errno(47);
    /// `ENOMEM`
    pub const NOMEM: Errno = Errno(48);
    /// `ENOMSG`
    pub const NOMSG: Errno = Errno(49);
    /// `ENOPROTOOPT`
    pub const NOPROTOOPT: Errno = Errno(50);
    /// `ENOSPC`
    pub const NOSPC: Errno = Errno(51);
    /// `ENOSYS`
    pub const NOSYS: Errno = Errno(52);
    /// `ENOTCONN`
    pub const NOTCONN: Errno = Errno(53);
    /// `ENOTDIR`
    pub const NOTDIR: Errno = Errno(54);
    /// `ENOTEMPTY`
    pub const NOTEMPTY: Errno = Errno(55);
    /// `ENOTRECOVERABLE`
    pub const NOTRECOVERABLE: Errno = Errno(56);
    /// `ENOTSOCK`
    pub const NOTSOCK: Errno = Errno(57);
    /// `ENOTSUP`
    pub const NOTSUP: Errno = Errno(58);
    /// `ENOTTY`
    pub const NOTTY: Errno = Errno(59);
    /// `ENXIO`
    pub const NXIO: Errno = Errno(60);
    /// `EOVERFLOW`
    pub const OVERFLOW: Errno = Errno(61);
    /// `EOWNERDEAD`
    pub const OWNERDEAD: Errno = Errno(62);
    /// `EPERM`
    pub const PERM: Errno = Errno(63);
    /// `EPIPE`
    pub const PIPE: Errno = Errno(64);
    /// `EPROTO`
    pub const PROTO: Errno = Errno(65);
    /// `EPROTONOSUPPORT`
    pub const PROTONOSUPPORT: Errno = Errno(66);
    /// `EPROTOTYPE`
    pub const PROTOTYPE: Errno = Errno(67);
    /// `ERANGE`
    pub const RANGE: Errno = Errno(68);
    /// `EROFS`
    pub const ROFS: Errno = Errno(69);
    /// `ESPIPE`
    pub const SPIPE: Errno = Errno(70);
    /// `ESRCH`
    pub const SRCH: Errno = Errno(71);
    /// `ESTALE`
    pub const STALE: Errno = Errno(72);
    /// `ETIMEDOUT`
    pub const TIMEDOUT: Errno = Errno(73);
    /// `ETXTBSY`
    pub const TXTBSY: Errno = Errno(74);
    /// `EXDEV`
    pub const XDEV: Errno = Errno(75);
    /// `ENOTCAPABLE`: the capability (rights or sandbox) does not allow this.
    pub const NOTCAPABLE: Errno = Errno(76);

    /// The raw value returned to the guest.
    pub fn raw(self) -> u16 {
        self.0
    }

    /// The preview1 name of this value (`"NOENT"`, `"NOTCAPABLE"`, ...).
    pub fn name(self) -> &'static str {
        NAMES.get(usize::from(self.0)).copied().unwrap_or("UNKNOWN")
    }

    /// Maps a host (Linux) `errno` value to its WASI counterpart; anything
    /// without one becomes `EIO`.
    pub fn from_host(code: i32) -> Errno {
        match code {
            0 => Errno::SUCCESS,
            libc::E2BIG => Errno::TOOBIG,
            libc::EACCES => Errno::ACCES,
            libc::EADDRINUSE => Errno::ADDRINUSE,
            libc::EADDRNOTAVAIL => Errno::ADDRNOTAVAIL,
            libc::EAFNOSUPPORT => Errno::AFNOSUPPORT,
            libc::EAGAIN => Errno::AGAIN,
            libc::EALREADY => Errno::ALREADY,
            libc::EBADF => Errno::BADF,
            libc::EBADMSG => Errno::BADMSG,
            libc::EBUSY => Errno::BUSY,
            libc::ECANCELED => Errno::CANCELED,
            libc::ECHILD => Errno::CHILD,
            libc::ECONNABORTED => Errno::CONNABORTED,
            libc::ECONNREFUSED => Errno::CONNREFUSED,
            libc::ECONNRESET => Errno::CONNRESET,
            libc::EDEADLK => Errno::DEADLK,
            libc::EDESTADDRREQ => Errno::DESTADDRREQ,
            libc::EDOM => Errno::DOM,
            libc::EDQUOT => Errno::DQUOT,
            libc::EEXIST => Errno::EXIST,
            libc::EFAULT => Errno::FAULT,
            libc::EFBIG => Errno::FBIG,
            libc::EHOSTUNREACH => Errno::HOSTUNREACH,
            libc::EIDRM => Errno::IDRM,
            libc::EILSEQ => Errno::ILSEQ,
            libc::EINPROGRESS => Errno::INPROGRESS,
            libc::EINTR => Errno::INTR,
            libc::EINVAL => Errno::INVAL,
            libc::EIO => Errno::IO,
            libc::EISCONN => Errno::ISCONN,
            libc::EISDIR => Errno::ISDIR,
            libc::ELOOP => Errno::LOOP,
            libc::EMFILE => Errno::MFILE,
            libc::EMLINK => Errno::MLINK,
            libc::EMSGSIZE => Errno::MSGSIZE,
            libc::EMULTIHOP => Errno::MULTIHOP,
            libc::ENAMETOOLONG => Errno::NAMETOOLONG,
            libc::ENETDOWN => Errno::NETDOWN,
            libc::ENETRESET => Errno::NETRESET,
            libc::ENETUNREACH => Errno::NETUNREACH,
            libc::ENFILE => Errno::NFILE,
            libc::ENOBUFS => Errno::NOBUFS,
            libc::ENODEV => Errno::NODEV,
            libc::ENOENT => Errno::NOENT,
            libc::ENOEXEC => Errno::NOEXEC,
            libc::ENOLCK => Errno::NOLCK,
            libc::ENOLINK => Errno::NOLINK,
            libc::ENOMEM => Errno::NOMEM,
            libc::ENOMSG => Errno::NOMSG,
            libc::ENOPROTOOPT => Errno::NOPROTOOPT,
            libc::ENOSPC => Errno::NOSPC,
            libc::ENOSYS => Errno::NOSYS,
            libc::ENOTCONN => Errno::NOTCONN,
            libc::ENOTDIR => Errno::NOTDIR,
            libc::ENOTEMPTY => Errno::NOTEMPTY,
            libc::ENOTRECOVERABLE => Errno::NOTRECOVERABLE,
            libc::ENOTSOCK => Errno::NOTSOCK,
            libc::ENOTSUP => Errno::NOTSUP,
            libc::ENOTTY => Errno::NOTTY,
            libc::ENXIO => Errno::NXIO,
            libc::EOVERFLOW => Errno::OVERFLOW,
            libc::EOWNERDEAD => Errno::OWNERDEAD,
            libc::EPERM => Errno::PERM,
            libc::EPIPE => Errno::PIPE,
            libc::EPROTO => Errno::PROTO,
            libc::EPROTONOSUPPORT => Errno::PROTONOSUPPORT,
            libc::EPROTOTYPE => Errno::PROTOTYPE,
            libc::ERANGE => Errno::RANGE,
            libc::EROFS => Errno::ROFS,
            libc::ESPIPE => Errno::SPIPE,
            libc::ESRCH => Errno::SRCH,
            libc::ESTALE => Errno::STALE,
            libc::ETIMEDOUT => Errno::TIMEDOUT,
            libc::ETXTBSY => Errno::TXTBSY,
            libc::EXDEV => Errno::XDEV,
            _ => Errno::IO,
        }
    }

    /// Maps a host I/O error (by its OS code) to a WASI errno; errors with
    /// no OS code become `EIO`.
    pub fn from_io(err: &std::io::Error) -> Errno {
        err.raw_os_error().map_or(Errno::IO, Errno::from_host)
    }

    /// The current thread's host `errno`, mapped.
    pub fn last_host() -> Errno {
        Errno::from_io(&std::io::Error::last_os_error())
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<std::io::Error> for Errno {
    fn from(err: std::io::Error) -> Errno {
        Errno::from_io(&err)
    }
}

/// Result of a host-function body: `Err` carries the errno to return.
pub type WasiResult<T> = Result<T, Errno>;

const NAMES: [&str; 77] = [
    "SUCCESS",
    "2BIG",
    "ACCES",
    "ADDRINUSE",
    "ADDRNOTAVAIL",
    "AFNOSUPPORT",
    "AGAIN",
    "ALREADY",
    "BADF",
    "BADMSG",
    "BUSY",
    "CANCELED",
    "CHILD",
    "CONNABORTED",
    "CONNREFUSED",
    "CONNRESET",
    "DEADLK",
    "DESTADDRREQ",
    "DOM",
    "DQUOT",
    "EXIST",
    "FAULT",
    "FBIG",
    "HOSTUNREACH",
    "IDRM",
    "ILSEQ",
    "INPROGRESS",
    "INTR",
    "INVAL",
    "IO",
    "ISCONN",
    "ISDIR",
    "LOOP",
    "MFILE",
    "MLINK",
    "MSGSIZE",
    "MULTIHOP",
    "NAMETOOLONG",
    "NETDOWN",
    "NETRESET",
    "NETUNREACH",
    "NFILE",
    "NOBUFS",
    "NODEV",
    "NOENT",
    "NOEXEC",
    "NOLCK",
    "NOLINK",
    "NOMEM",
    "NOMSG",
    "NOPROTOOPT",
    "NOSPC",
    "NOSYS",
    "NOTCONN",
    "NOTDIR",
    "NOTEMPTY",
    "NOTRECOVERABLE",
    "NOTSOCK",
    "NOTSUP",
    "NOTTY",
    "NXIO",
    "OVERFLOW",
    "OWNERDEAD",
    "PERM",
    "PIPE",
    "PROTO",
    "PROTONOSUPPORT",
    "PROTOTYPE",
    "RANGE",
    "ROFS",
    "SPIPE",
    "SRCH",
    "STALE",
    "TIMEDOUT",
    "TXTBSY",
    "XDEV",
    "NOTCAPABLE",
];
