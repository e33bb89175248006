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
    /// gather or scatter cannot fail half way.
    pub fn iovecs(&self, ptr: u32, count: u32) -> WasiResult<Vec<GuestIovec>> {
        self.range(ptr, u64::from(count) * 8)?;
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

    /// Concatenates the guest buffers of `iovs` (checked by
    /// [`iovecs`](Self::iovecs)), at most [`MAX_IO`] bytes: a longer write
    /// becomes a short write, as POSIX allows.
    pub fn gather(&self, iovs: &[GuestIovec]) -> WasiResult<Vec<u8>> {
        let total = iovecs_len(iovs);
        let mut out = Vec::with_capacity(total);
        for v in iovs {
            let room = total - out.len();
            if room == 0 {
                break;
            }
            let n = (v.len as usize).min(room) as u32;
            out.extend_from_slice(self.slice(v.ptr, n)?);
        }
        Ok(out)
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

    /// A path argument: `len` bytes at `ptr`, which must hold no NUL byte
    /// (`EILSEQ` otherwise; the host could not represent it).
    pub fn path(&self, ptr: u32, len: u32) -> WasiResult<Vec<u8>> {
        let bytes = self.slice(ptr, len)?;
        if bytes.contains(&0) {
            return Err(Errno::ILSEQ);
        }
        Ok(bytes.to_vec())
    }
}

/// Most bytes one read or write call moves (16 MiB). Iovecs may name the
/// same memory many times over; this bounds the host buffer, and a guest
/// sees a short read or write, which it must handle anyway.
pub const MAX_IO: usize = 16 << 20;

/// Total length of `iovs`, capped at [`MAX_IO`].
pub fn iovecs_len(iovs: &[GuestIovec]) -> usize {
    iovs.iter()
        .map(|v| v.len as usize)
        .fold(0usize, |a, b| a.saturating_add(b))
        .min(MAX_IO)
}
