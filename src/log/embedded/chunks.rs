//! Read buffers for the embedded log, recycled: a read `pread`s a chunk of
//! a segment into one buffer and hands out its records as zero-copy slices
//! of it; when the last slice is dropped the buffer goes back to a small
//! pool instead of to the allocator.
//!
//! Why: a fresh megabyte per chunk cost a replay page faults, zeroing and
//! unmapping on every read (the allocator returns large buffers to the
//! kernel), about a fifth of the reading thread's time. A recycled buffer
//! is already mapped and initialised, so it is neither zeroed nor faulted
//! in again.
//!
//! Invariants: a buffer is in the pool or owned by exactly one [`Chunk`];
//! the pool holds at most [`POOL_MAX`] buffers of at most [`BUF_MAX`]
//! bytes, so its memory is bounded whatever the readers do.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers kept for reuse. Readers hold a chunk or two each while they
/// decode; a handful covers a replay of every partition at once.
const POOL_MAX: usize = 16;
/// Buffers bigger than this (a read of one oversized frame) are not kept.
const BUF_MAX: usize = 4 << 20;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of exactly `len` initialised bytes, recycled when possible.
/// Fill it, then [`freeze`](Self::freeze) it.
pub(crate) struct Chunk {
    /// Initialised up to its own length, which only grows (so a recycled
    /// buffer is never zeroed again); the chunk is its first `len` bytes.
    buf: Vec<u8>,
    len: usize,
}

impl Chunk {
    pub fn with_len(len: usize) -> Self {
        let recycled = POOL.lock().ok().and_then(|mut p| p.pop());
        let mut buf = recycled.unwrap_or_default();
        // Only bytes past what the buffer already holds need zeroing; a
        // recycled buffer's old contents are overwritten by the read.
        if buf.len() < len {
            buf.resize(len, 0);
        }
        Chunk { buf, len }
    }

    pub fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Shares the chunk; slices of it keep it alive, the last one returns
    /// it to the pool.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() > BUF_MAX {
            return;
        }
        if let Ok(mut pool) = POOL.lock() {
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_holds_what_was_written_and_its_slices_outlive_it() {
        let mut c = Chunk::with_len(8);
        c.as_mut().copy_from_slice(b"abcdefgh");
        let b = c.freeze();
        let s = b.slice(2..4);
        drop(b);
        assert_eq!(&s[..], b"cd");
    }

    #[test]
    fn a_recycled_buffer_has_the_asked_length() {
        let mut c = Chunk::with_len(1024);
        c.as_mut().fill(7);
        drop(c.freeze());
        let c = Chunk::with_len(16);
        assert_eq!(c.as_ref().len(), 16);
        let c = Chunk::with_len(2048);
        assert_eq!(c.as_ref().len(), 2048);
    }
}
