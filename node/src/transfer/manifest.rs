//! File manifests and the set of verified chunks, free of network IO.
//!
//! The manifest lists the BLAKE3 hash of each chunk; its root is the BLAKE3
//! hash of the manifest's encoding under a domain tag. Two levels of hashes
//! form the verified tree: the root vouches for the manifest, the manifest
//! for each chunk.

use serde::{Deserialize, Serialize};
use std::io::Read;

/// Bytes per chunk.
pub const CHUNK_SIZE: u32 = 1 << 20;
/// Largest chunk a manifest may name: a receiver holds a few chunks in memory.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Largest file a manifest may describe (64 GiB: 65,536 chunks, a 2 MiB manifest).
pub const MAX_FILE_SIZE: u64 = 64 << 30;
/// Domain tag hashed before the manifest's encoding.
const ROOT_DOMAIN: &[u8] = b"skein/file-manifest/v1\0";

/// A BLAKE3 hash.
pub type Hash = [u8; 32];

/// What is wrong with a manifest or a chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest does not hash to the offered root.
    #[error("the file's manifest does not match the offered hash; the sender's copy changed or the data was corrupted")]
    WrongRoot,
    /// The manifest could not be decoded.
    #[error("the file's manifest is malformed: {0}")]
    Malformed(String),
    /// The manifest contradicts itself.
    #[error("the file's manifest is inconsistent: {0}")]
    Inconsistent(String),
    /// A chunk does not hash to its manifest entry.
    #[error("chunk {index} of the file failed verification; it will be fetched again")]
    BadChunk {
        /// Which chunk.
        index: u64,
    },
    /// A chunk index or length outside the file.
    #[error("chunk {index} is not part of this file (or has the wrong length)")]
    NoSuchChunk {
        /// Which chunk.
        index: u64,
    },
}

/// A file's size and chunk hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// File size in bytes.
    pub size: u64,
    /// Bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    /// BLAKE3 hash of each chunk, in order.
    pub chunks: Vec<Hash>,
}

/// Number of chunks a file of `size` bytes has.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1)))
}

impl Manifest {
    /// Hashes everything `r` yields into a manifest with `chunk_size` chunks.
    pub fn from_reader(mut r: impl Read, chunk_size: u32) -> std::io::Result<Manifest> {
        let chunk_size = chunk_size.max(1);
        let mut buf = vec![0u8; chunk_size as usize];
        let (mut size, mut chunks) = (0u64, Vec::new());
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                break;
            }
            size += filled as u64;
            if size > MAX_FILE_SIZE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("the file is larger than the {} GiB a transfer allows", MAX_FILE_SIZE >> 30),
                ));
            }
            chunks.push(*blake3::hash(&buf[..filled]).as_bytes());
            if filled < buf.len() {
                break;
            }
        }
        Ok(Manifest { size, chunk_size, chunks })
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of integers and fixed arrays always encodes.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// The root hash that addresses the file.
    pub fn root(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(ROOT_DOMAIN);
        h.update(&self.encode());
        *h.finalize().as_bytes()
    }

    /// Decodes a manifest received for `root`, checking it hashes to it and
    /// is consistent.
    pub fn decode(bytes: &[u8], root: &Hash) -> Result<Manifest, ManifestError> {
        let m: Manifest = postcard::from_bytes(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if &m.root() != root {
            return Err(ManifestError::WrongRoot);
        }
        m.check()?;
        Ok(m)
    }

    /// Checks the manifest agrees with itself and with the limits.
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(ManifestError::Inconsistent(format!(
                "a chunk size of {} bytes (at most {MAX_CHUNK_SIZE})",
                self.chunk_size
            )));
        }
        if self.size > MAX_FILE_SIZE {
            return Err(ManifestError::Inconsistent(format!("a size over {} GiB", MAX_FILE_SIZE >> 30)));
        }
        let want = chunk_count(self.size, self.chunk_size);
        if self.chunks.len() as u64 != want {
            return Err(ManifestError::Inconsistent(format!(
                "{} chunk hashes for {} bytes (expected {want})",
                self.chunks.len(),
                self.size
            )));
        }
        Ok(())
    }

    /// Number of chunks.
    pub fn count(&self) -> u64 {
        self.chunks.len() as u64
    }

    /// Byte offset and length of chunk `index`.
    pub fn chunk_span(&self, index: u64) -> Option<(u64, u64)> {
        if index >= self.count() {
            return None;
        }
        let start = index * u64::from(self.chunk_size);
        Some((start, (self.size - start).min(u64::from(self.chunk_size))))
    }

    /// Checks `data` is chunk `index`.
    pub fn verify_chunk(&self, index: u64, data: &[u8]) -> Result<(), ManifestError> {
        let (_, len) = self.chunk_span(index).ok_or(ManifestError::NoSuchChunk { index })?;
        if data.len() as u64 != len {
            return Err(ManifestError::NoSuchChunk { index });
        }
        let expected = usize::try_from(index).ok().and_then(|i| self.chunks.get(i));
        if expected != Some(blake3::hash(data).as_bytes()) {
            return Err(ManifestError::BadChunk { index });
        }
        Ok(())
    }
}

/// Which chunks of a file are verified and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    count: u64,
    bits: Vec<u64>,
}

impl Have {
    /// Nothing yet, for a file of `count` chunks.
    pub fn none(count: u64) -> Have {
        Have { count, bits: vec![0; count.div_ceil(64) as usize] }
    }

    /// Everything, for a file of `count` chunks (the sender's side).
    pub fn all(count: u64) -> Have {
        let mut h = Have::none(count);
        for i in 0..count {
            h.insert(i);
        }
        h
    }

    /// Number of chunks in the file.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether a decoded set is well formed (its bit words match its count).
    pub fn is_consistent(&self) -> bool {
        self.bits.len() as u64 == self.count.div_ceil(64)
    }

    /// Records chunk `index` as verified; ignores indices past the end.
    pub fn insert(&mut self, index: u64) {
        if index < self.count
            && let Some(w) = self.bits.get_mut((index / 64) as usize)
        {
            *w |= 1 << (index % 64);
        }
    }

    /// Forgets chunk `index` (a peer turned out not to hold it).
    pub fn remove(&mut self, index: u64) {
        if let Some(w) = self.bits.get_mut((index / 64) as usize) {
            *w &= !(1 << (index % 64));
        }
    }

    /// The first missing chunk at or after `from`, skipping whole words
    /// of verified chunks.
    pub fn next_missing(&self, from: u64) -> Option<u64> {
        let mut i = from;
        while i < self.count {
            let word = self.bits.get((i / 64) as usize).copied().unwrap_or(0);
            let rest = !word >> (i % 64);
            if rest == 0 {
                i = (i / 64 + 1) * 64;
                continue;
            }
            let found = i + u64::from(rest.trailing_zeros());
            return (found < self.count).then_some(found);
        }
        None
    }

    /// Whether chunk `index` is verified.
    pub fn contains(&self, index: u64) -> bool {
        index < self.count && self.bits.get((index / 64) as usize).is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// Number of verified chunks.
    pub fn len(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Whether no chunk is verified.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every chunk is verified.
    pub fn is_complete(&self) -> bool {
        self.len() == self.count
    }

    /// The chunks still missing, in order.
    pub fn missing(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count).filter(|i| !self.contains(*i))
    }

    /// Bytes verified so far of a file described by `m`.
    pub fn bytes(&self, m: &Manifest) -> u64 {
        (0..self.count).filter(|i| self.contains(*i)).filter_map(|i| m.chunk_span(i)).map(|(_, len)| len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn chunks_are_verified_and_a_bad_one_is_named() {
        let file = data(2 * 1000 + 17);
        let m = Manifest::from_reader(&file[..], 1000).expect("hash");
        assert_eq!((m.size, m.count()), (2017, 3));
        assert_eq!(m.chunk_span(2), Some((2000, 17)));
        assert_eq!(m.chunk_span(3), None);
        m.verify_chunk(1, &file[1000..2000]).expect("good chunk");
        let mut bad = file[1000..2000].to_vec();
        bad[500] ^= 1;
        assert_eq!(m.verify_chunk(1, &bad), Err(ManifestError::BadChunk { index: 1 }));
        assert_eq!(m.verify_chunk(2, &file[2000..2010]), Err(ManifestError::NoSuchChunk { index: 2 }));
        assert_eq!(m.verify_chunk(9, &file[..17]), Err(ManifestError::NoSuchChunk { index: 9 }));
    }

    #[test]
    fn a_manifest_is_accepted_only_for_its_root() {
        let m = Manifest::from_reader(&data(5000)[..], 1024).expect("hash");
        let root = m.root();
        assert_eq!(Manifest::decode(&m.encode(), &root), Ok(m.clone()));
        let mut other = m.clone();
        other.chunks[0][0] ^= 1;
        assert_eq!(Manifest::decode(&other.encode(), &root), Err(ManifestError::WrongRoot));
        assert!(matches!(Manifest::decode(&[0xff; 3], &root), Err(ManifestError::Malformed(_))));
        // Consistent with its own root but lying about its size.
        let mut liar = m.clone();
        liar.size += 4096;
        assert!(matches!(Manifest::decode(&liar.encode(), &liar.root()), Err(ManifestError::Inconsistent(_))));
        // One 4 GiB "chunk" would have the receiver allocate 4 GiB for it.
        let greedy = Manifest { size: 1 << 31, chunk_size: u32::MAX, chunks: vec![[0; 32]] };
        assert!(matches!(Manifest::decode(&greedy.encode(), &greedy.root()), Err(ManifestError::Inconsistent(_))));
    }

    #[test]
    fn an_empty_file_has_no_chunks() {
        let m = Manifest::from_reader(&[][..], CHUNK_SIZE).expect("hash");
        assert_eq!((m.size, m.count()), (0, 0));
        m.check().expect("consistent");
        assert!(Have::none(0).is_complete());
    }

    #[test]
    fn have_tracks_what_is_left() {
        let m = Manifest::from_reader(&data(10 * 100 + 1)[..], 100).expect("hash");
        let mut h = Have::none(m.count());
        for i in [0, 3, 10, 99] {
            h.insert(i);
        }
        assert_eq!(h.len(), 3);
        assert!(h.contains(10) && !h.contains(99));
        assert_eq!(h.bytes(&m), 201);
        assert_eq!(h.missing().collect::<Vec<_>>(), vec![1, 2, 4, 5, 6, 7, 8, 9]);
        assert!(Have::all(m.count()).is_complete());
    }

    #[test]
    fn a_malformed_have_record_never_panics() {
        let bytes = postcard::to_stdvec(&(200u64, Vec::<u64>::new())).expect("encode");
        let mut h: Have = postcard::from_bytes(&bytes).expect("decodes as a shape");
        assert!(!h.is_consistent());
        h.insert(150);
        assert!(!h.contains(150));
        assert!(Have::none(200).is_consistent());
    }

    proptest! {
        #[test]
        fn next_missing_agrees_with_missing(count in 0u64..300, picks in proptest::collection::vec(0u64..300, 0..300), from in 0u64..310) {
            let mut h = Have::none(count);
            for p in picks {
                h.insert(p);
            }
            h.remove(count / 2);
            prop_assert!(count == 0 || !h.contains(count / 2));
            let expected = h.missing().find(|i| *i >= from);
            prop_assert_eq!(h.next_missing(from), expected);
        }

        #[test]
        fn every_chunk_of_any_file_verifies(len in 0usize..5000, chunk in 1u32..700) {
            let file = data(len);
            let m = Manifest::from_reader(&file[..], chunk).expect("hash");
            m.check().expect("consistent");
            prop_assert_eq!(m.size, len as u64);
            for i in 0..m.count() {
                let (start, n) = m.chunk_span(i).expect("span");
                prop_assert!(m.verify_chunk(i, &file[start as usize..(start + n) as usize]).is_ok());
            }
            prop_assert_eq!(Manifest::decode(&m.encode(), &m.root()).expect("decode"), m);
        }
    }
}
