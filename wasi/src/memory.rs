//! Bounds-checked access to a guest's linear memory.
//!
//! Every guest pointer is untrusted: each access checks `ptr + len` against
//! the memory's length (in 64-bit arithmetic, so nothing wraps) and fails
//! with `EFAULT` when it does not fit. Values are little endian and need no
//! alignment.

use crate::errno::{Errno, WasiResult};

/// A guest's whole linear memory, borrowed for one host call.
pub struct GuestMemory<'a> {
    bytes: &'a mut [u8],
}

/// One `iovec`/`ciovec` of a guest: a buffer address and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestIovec {
    /// Guest address of the buffer.
    pub ptr: u32,
    /// Length of the buffer in bytes.
    pub len: u32,
}

impl<'a> GuestMemory<'a> {
    /// Wraps the calling instance's linear memory. A wasm32 guest can
    /// address at most 4 GiB, so only that much of a longer slice is used
    /// (every in-range `ptr + len` then fits in 33 bits and `u32` offset
    /// arithmetic inside a checked range cannot wrap).
    pub fn new(bytes: &'a mut [u8]) -> GuestMemory<'a> {
        let max = (1u64 << 32).min(bytes.len() as u64) as usize;
        GuestMemory {
            bytes: &mut bytes[..max],
        }
    }

    /// The range `ptr..ptr+len` as host indices, or `EFAULT`.
    fn range(&self, ptr: u32, len: u64) -> WasiResult<std::ops::Range<usize>> {
        let end = u64::from(ptr) + len;
        if end > self.bytes.len() as u64 {
            return Err(Errno::FAULT);
        }
        // Both fit in usize: they are at most the slice's length.
        Ok(ptr as usize..end as usize)
    }

    /// `len` bytes at `ptr`.
    pub fn slice(&self, ptr: u32, len: u32) -> WasiResult<&[u8]> {
        let r = self.range(ptr, u64::from(len))?;
        Ok(&self.bytes[r])
    }

    /// `len` writable bytes at `ptr`.
    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> WasiResult<&mut [u8]> {
        let r = self.range(ptr, u64::from(len))?;
        Ok(&mut self.bytes[r])
    }

    /// Copies `data` to `ptr`.
    pub fn write_bytes(&mut self, ptr: u32, data: &[u8]) -> WasiResult<()> {
        let r = self.range(ptr, data.len() as u64)?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }

    fn read_array<const N: usize>(&self, ptr: u32) -> WasiResult<[u8; N]> {
        let r = self.range(ptr, N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[r]);
        Ok(out)
    }

    /// The byte at `ptr`.
    pub fn read_u8(&self, ptr: u32) -> WasiResult<u8> {
        Ok(self.read_array::<1>(ptr)?[0])
    }

    /// The little-endian `u16` at `ptr`.
    pub fn read_u16(&self, ptr: u32) -> WasiResult<u16> {
        Ok(u16::from_le_bytes(self.read_array(ptr)?))
    }

    /// The little-endian `u32` at `ptr`.
    pub fn read_u32(&self, ptr: u32) -> WasiResult<u32> {
        Ok(u32::from_le_bytes(self.read_array(ptr)?))
    }

    /// The little-endian `u64` at `ptr`.
    pub fn read_u64(&self, ptr: u32) -> WasiResult<u64> {
        Ok(u64::from_le_bytes(self.read_array(ptr)?))
    }

    /// Stores a byte at `ptr`.
    pub fn write_u8(&mut self, ptr: u32, v: u8) -> WasiResult<()> {
        self.write_bytes(ptr, &[v])
    }

    /// Stores a little-endian `u16` at `ptr`.
    pub fn write_u16(&mut self, ptr: u32, v: u16) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Stores a little-endian `u32` at `ptr`.
    pub fn write_u32(&mut self, ptr: u32, v: u32) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Stores a little-endian `u64` at `ptr`.
    pub fn write_u64(&mut self, ptr: u32, v: u64) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Reads an array of `count` iovecs (8 bytes each: `buf`, `buf_len`) at
    /// `ptr` and checks that every buffer lies inside memory, so a later
    /// read or write cannot fail half way. The array must lie inside
    /// memory (`EFAULT`) and hold at most [`MAX_IOVS`] entries (`EINVAL`,
    /// as Linux's `readv`/`writev` say above `IOV_MAX`): the host work and
    /// the vector returned are bounded by that, not by the guest's count.
    pub fn iovecs(&self, ptr: u32, count: u32) -> WasiResult<Vec<GuestIovec>> {
        self.range(ptr, u64::from(count) * 8)?;
        if count as usize > MAX_IOVS {
            return Err(Errno::INVAL);
        }
        let mut out = Vec::with_capacity(count as usize);
        for i in 0..u64::from(count) {
            let at = u32::try_from(u64::from(ptr) + i * 8).map_err(|_| Errno::FAULT)?;
            let at4 = at.checked_add(4).ok_or(Errno::FAULT)?;
            let iov = GuestIovec {
                ptr: self.read_u32(at)?,
                len: self.read_u32(at4)?,
            };
            self.range(iov.ptr, u64::from(iov.len))?;
            out.push(iov);
        }
        Ok(out)
    }

    /// The guest buffers of `iovs` (checked by [`iovecs`](Self::iovecs)) in
    /// order, cut so that they hold at most [`MAX_IO`] bytes together:
    /// what one write moves (a longer write is a short write, as POSIX
    /// allows). Empty buffers are left out. Borrows guest memory, copies
    /// nothing.
    pub fn io_slices(&self, iovs: &[GuestIovec]) -> WasiResult<Vec<&[u8]>> {
        let mut out = Vec::with_capacity(iovs.len());
        let mut room = MAX_IO;
        for v in iovs {
            if room == 0 {
                break;
            }
            let n = (v.len as usize).min(room);
            if n == 0 {
                continue;
            }
            // n <= v.len, which is a u32.
            out.push(self.slice(v.ptr, n as u32)?);
            room -= n;
        }
        Ok(out)
    }

    /// Like [`io_slices`](Self::io_slices), for a read into guest memory:
    /// host `iovec`s that point into this memory (at most [`MAX_IO`]
    /// bytes in all), for `readv`/`preadv`. Guest buffers may overlap, so
    /// these are raw pointers rather than `&mut` slices; they are valid
    /// while this `GuestMemory` is mutably borrowed, which the closure
    /// `io` receives them under. Returns what `io` returns.
    pub(crate) fn with_host_iovecs_mut<T>(
        &mut self,
        iovs: &[GuestIovec],
        io: impl FnOnce(&[libc::iovec]) -> T,
    ) -> WasiResult<T> {
        let mut host = Vec::with_capacity(iovs.len());
        let mut room = MAX_IO;
        // One base pointer for all of them: the buffers may overlap, so no
        // `&mut` sub-slice is made per buffer.
        let base = self.bytes.as_mut_ptr();
        for v in iovs {
            if room == 0 {
                break;
            }
            let n = (v.len as usize).min(room);
            if n == 0 {
                continue;
            }
            let r = self.range(v.ptr, n as u64)?;
            // In bounds (checked just above); `self.bytes` stays mutably
            // borrowed (by `&mut self`) until `io` returns.
            host.push(libc::iovec {
                iov_base: base.wrapping_add(r.start).cast(),
                iov_len: n,
            });
            room -= n;
        }
        Ok(io(&host))
    }

    /// Spreads `data` over the guest buffers of `iovs` in order; stops when
    /// `data` runs out.
    pub fn scatter(&mut self, iovs: &[GuestIovec], mut data: &[u8]) -> WasiResult<()> {
        for v in iovs {
            if data.is_empty() {
                break;
            }
            let n = data.len().min(v.len as usize);
            // n <= v.len, which is a u32.
            self.write_bytes(v.ptr, &data[..n])?;
            data = &data[n..];
        }
        Ok(())
    }

    /// A path argument: `len` bytes at `ptr`, at most [`MAX_PATH`]
    /// (`ENAMETOOLONG` above, before anything is copied), which must hold
    /// no NUL byte (`EILSEQ` otherwise; the host could not represent it).
    pub fn path(&self, ptr: u32, len: u32) -> WasiResult<Vec<u8>> {
        let bytes = self.slice(ptr, len)?;
        if bytes.len() > MAX_PATH {
            return Err(Errno::NAMETOOLONG);
        }
        if bytes.contains(&0) {
            return Err(Errno::ILSEQ);
        }
        Ok(bytes.to_vec())
    }
}

/// Most bytes one read or write call moves (256 KiB). A longer request
/// is a short read or write, which POSIX and WASI allow and which every
/// libc loops on. The bytes move straight between guest memory and the
/// host descriptor (`readv`/`writev` on buffers inside guest memory), so
/// the host allocates nothing in proportion; the cap bounds the time one
/// call holds a worker (tens of microseconds to the page cache) while
/// leaving throughput where larger buffers get it (coreutils settled on
/// 128–256 KiB buffers for the same trade).
pub const MAX_IO: usize = 256 << 10;

/// Most iovecs one read or write call takes (1024, Linux's `IOV_MAX`);
/// more is `EINVAL`.
pub const MAX_IOVS: usize = 1024;

/// Longest path argument, in bytes (4096, Linux's `PATH_MAX`); longer is
/// `ENAMETOOLONG`.
pub const MAX_PATH: usize = 4096;

/// Total length of `iovs`, capped at [`MAX_IO`].
pub fn iovecs_len(iovs: &[GuestIovec]) -> usize {
    iovs.iter()
        .map(|v| v.len as usize)
        .fold(0usize, |a, b| a.saturating_add(b))
        .min(MAX_IO)
}
