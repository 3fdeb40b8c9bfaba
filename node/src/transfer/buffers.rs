//! Chunk buffers kept for reuse. A transfer moves each chunk through a
//! buffer (read off the stream, then verified and written; or read from
//! the file, then sent), and gives the buffer back when done with it, so a
//! gigabyte goes through a window's worth of buffers instead of a fresh
//! megabyte per chunk, zeroed and its pages faulted in by the kernel.

use std::sync::{Arc, Mutex};

/// A transfer's spare chunk buffers, shared by its tasks and threads.
#[derive(Debug, Clone)]
pub struct Buffers {
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    keep: usize,
}

impl Buffers {
    /// Keeps at most `keep` spare buffers.
    pub fn new(keep: usize) -> Buffers {
        Buffers { spare: Arc::new(Mutex::new(Vec::with_capacity(keep))), keep }
    }

    /// A buffer of `len` bytes, to be filled whole by the caller (a spare
    /// one still holds an earlier chunk's bytes).
    pub fn take(&self, len: usize) -> Vec<u8> {
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match spare {
            Some(mut buf) => {
                buf.resize(len, 0);
                buf
            }
            None => vec![0; len],
        }
    }

    /// Gives `buf` back for a later chunk.
    pub fn give(&self, buf: Vec<u8>) {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < self.keep {
            spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_at_the_size_asked() {
        let b = Buffers::new(2);
        let first = b.take(1 << 20);
        let at = first.as_ptr();
        b.give(first);
        let again = b.take(1000);
        assert_eq!((again.as_ptr(), again.len()), (at, 1000), "the same allocation, cut to size");
        b.give(again);
        assert_eq!(b.take(1 << 20).len(), 1 << 20, "and grown back");
    }

    #[test]
    fn no_more_than_keep_are_kept() {
        let b = Buffers::new(1);
        b.give(vec![1; 4]);
        b.give(vec![2; 4]);
        assert_eq!(b.take(4), vec![1; 4]);
        assert_eq!(b.take(4), vec![0; 4], "the second was dropped; a new one is zeroed");
    }
}
