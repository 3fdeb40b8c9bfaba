//! A file being received: chunks are written in place into a temporary
//! file next to their final home, the set of verified chunks is saved
//! beside it so a restart resumes, and the file is renamed into place only
//! once every chunk is verified.
//!
//! For a file `NAME` in the downloads folder the temporary files are
//! `.NAME.<root>.part` (the data) and `.NAME.<root>.have` (the verified
//! chunk set, postcard-encoded). The root hash in their names ties them to
//! one content, so a different file offered under the same name never
//! resumes from the wrong bytes.
//!
//! A checkpoint only records the set; it does not force the data to disk,
//! so it is cheap enough to take every few chunks. What it records is
//! checked again when the file is reopened: every recorded chunk is hashed
//! against the manifest and one that does not match (lost in a power cut)
//! is fetched again. The complete file is synced before it is renamed.

use super::manifest::{Have, Manifest, ManifestError};
use super::names::unused_path;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Why a partial file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartialError {
    /// A chunk failed verification (nothing was written).
    #[error(transparent)]
    Chunk(#[from] ManifestError),
    /// The file system refused.
    #[error("cannot write the received file {path}: {source}")]
    Io {
        /// Which file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// `finish` was called before every chunk arrived.
    #[error("the file is not complete: {have} of {count} chunks are verified")]
    Incomplete {
        /// Chunks verified.
        have: u64,
        /// Chunks in the file.
        count: u64,
    },
}

/// A file being received into `dir` under the (sanitised) `name`.
#[derive(Debug)]
pub struct Partial {
    manifest: Manifest,
    dir: PathBuf,
    name: String,
    data: File,
    data_path: PathBuf,
    have_path: PathBuf,
    have: Have,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PartialError + '_ {
    move |source| PartialError::Io { path: path.display().to_string(), source }
}

impl Partial {
    /// Opens (or resumes) the reception of the file `manifest` describes.
    /// `name` must already be sanitised.
    pub fn open(dir: &Path, name: &str, manifest: Manifest) -> Result<Partial, PartialError> {
        let root = hex::encode(&manifest.root()[..8]);
        let data_path = dir.join(format!(".{name}.{root}.part"));
        let have_path = dir.join(format!(".{name}.{root}.have"));
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data_path)
            .map_err(io_err(&data_path))?;
        data.set_len(manifest.size).map_err(io_err(&data_path))?;
        // A missing or unreadable record means starting over, never trusting bytes.
        let recorded = std::fs::read(&have_path)
            .ok()
            .and_then(|b| postcard::from_bytes::<Have>(&b).ok())
            .filter(|h| h.is_consistent() && h.count() == manifest.count())
            .unwrap_or_else(|| Have::none(manifest.count()));
        let have = verified_subset(&data, &manifest, &recorded).map_err(io_err(&data_path))?;
        Ok(Partial { manifest, dir: dir.to_owned(), name: name.to_owned(), data, data_path, have_path, have })
    }

    /// The temporary data file.
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// The verified chunks so far.
    pub fn have(&self) -> &Have {
        &self.have
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Verifies chunk `index` and writes it in place. A bad chunk is
    /// refused and nothing is written.
    pub fn write_chunk(&mut self, index: u64, bytes: &[u8]) -> Result<(), PartialError> {
        self.manifest.verify_chunk(index, bytes)?;
        let (offset, _) = self.manifest.chunk_span(index).ok_or(ManifestError::NoSuchChunk { index })?;
        self.data.write_all_at(bytes, offset).map_err(io_err(&self.data_path))?;
        self.have.insert(index);
        Ok(())
    }

    /// Records the verified chunks, so a restart resumes from here. Call
    /// every few chunks.
    pub fn checkpoint(&self) -> Result<(), PartialError> {
        let bytes = postcard::to_stdvec(&self.have).unwrap_or_default();
        let tmp = self.have_path.with_extension("have.tmp");
        std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &self.have_path).map_err(io_err(&self.have_path))
    }

    /// Moves the complete file into place under its name (or `name (N)`
    /// when taken) and returns where it went.
    pub fn finish(self) -> Result<PathBuf, PartialError> {
        if !self.have.is_complete() {
            return Err(PartialError::Incomplete { have: self.have.len(), count: self.manifest.count() });
        }
        self.data.sync_all().map_err(io_err(&self.data_path))?;
        let target = unused_path(&self.dir, &self.name);
        std::fs::rename(&self.data_path, &target).map_err(io_err(&target))?;
        let _ = std::fs::remove_file(&self.have_path);
        Ok(target)
    }
}

/// The chunks of `recorded` whose bytes in `data` still match the manifest.
fn verified_subset(data: &File, manifest: &Manifest, recorded: &Have) -> io::Result<Have> {
    let mut have = Have::none(manifest.count());
    let mut buf = Vec::new();
    for index in 0..manifest.count() {
        if !recorded.contains(index) {
            continue;
        }
        let Some((offset, len)) = manifest.chunk_span(index) else { continue };
        buf.resize(len as usize, 0);
        data.read_exact_at(&mut buf, offset)?;
        if manifest.verify_chunk(index, &buf).is_ok() {
            have.insert(index);
        }
    }
    Ok(have)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 253) as u8 ^ (i / 253) as u8).collect()
    }

    fn chunk<'a>(m: &Manifest, data: &'a [u8], i: u64) -> &'a [u8] {
        let (start, len) = m.chunk_span(i).expect("span");
        &data[start as usize..(start + len) as usize]
    }

    #[test]
    fn chunks_in_any_order_give_the_same_file_under_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = file(10_000);
        let m = Manifest::from_reader(&data[..], 1024).expect("manifest");
        let mut p = Partial::open(dir.path(), "report.pdf", m.clone()).expect("open");
        for i in (0..m.count()).rev() {
            p.write_chunk(i, chunk(&m, &data, i)).expect("chunk");
        }
        let path = p.finish().expect("finish");
        assert_eq!(path, dir.path().join("report.pdf"));
        assert_eq!(std::fs::read(&path).expect("read"), data);
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(left.len(), 1, "no temporary files are left behind");
    }

    #[test]
    fn a_restart_resumes_from_the_last_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = file(7_000);
        let m = Manifest::from_reader(&data[..], 1000).expect("manifest");
        {
            let mut p = Partial::open(dir.path(), "a.bin", m.clone()).expect("open");
            for i in 0..4 {
                p.write_chunk(i, chunk(&m, &data, i)).expect("chunk");
            }
            p.checkpoint().expect("checkpoint");
            // Written after the checkpoint, then a crash: asked for again.
            p.write_chunk(4, chunk(&m, &data, 4)).expect("chunk");
        }
        let mut p = Partial::open(dir.path(), "a.bin", m.clone()).expect("reopen");
        assert_eq!(p.have().missing().collect::<Vec<_>>(), vec![4, 5, 6]);
        for i in 4..7 {
            p.write_chunk(i, chunk(&m, &data, i)).expect("chunk");
        }
        assert_eq!(std::fs::read(p.finish().expect("finish")).expect("read"), data);
    }

    #[test]
    fn bad_chunks_corrupt_records_and_early_finishes_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = file(3_000);
        let m = Manifest::from_reader(&data[..], 1000).expect("manifest");
        let mut p = Partial::open(dir.path(), "b.bin", m.clone()).expect("open");
        let mut bad = chunk(&m, &data, 1).to_vec();
        bad[0] ^= 0xff;
        assert!(matches!(p.write_chunk(1, &bad), Err(PartialError::Chunk(ManifestError::BadChunk { index: 1 }))));
        p.write_chunk(0, chunk(&m, &data, 0)).expect("chunk");
        p.checkpoint().expect("checkpoint");
        let have = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".have"))
            .expect("have file");
        std::fs::write(have.path(), b"\xff\xff\xff").expect("corrupt it");
        let p = Partial::open(dir.path(), "b.bin", m).expect("reopen");
        assert!(p.have().is_empty(), "a corrupt record starts over");
        assert!(matches!(p.finish(), Err(PartialError::Incomplete { have: 0, count: 3 })));
    }

    #[test]
    fn recorded_chunks_whose_bytes_were_lost_are_fetched_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = file(4_000);
        let m = Manifest::from_reader(&data[..], 1000).expect("manifest");
        let part = {
            let mut p = Partial::open(dir.path(), "d.bin", m.clone()).expect("open");
            for i in 0..3 {
                p.write_chunk(i, chunk(&m, &data, i)).expect("chunk");
            }
            p.checkpoint().expect("checkpoint");
            p.data_path().to_owned()
        };
        // As after a power cut: the record survived, chunk 1's bytes did not.
        let f = OpenOptions::new().write(true).open(&part).expect("part");
        f.write_all_at(&[0u8; 1000], 1000).expect("zero chunk 1");
        let p = Partial::open(dir.path(), "d.bin", m).expect("reopen");
        assert_eq!(p.have().missing().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn an_existing_file_is_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("c.txt"), b"mine").expect("write");
        let m = Manifest::from_reader(&b"theirs"[..], 1000).expect("manifest");
        let mut p = Partial::open(dir.path(), "c.txt", m).expect("open");
        p.write_chunk(0, b"theirs").expect("chunk");
        assert_eq!(p.finish().expect("finish"), dir.path().join("c (1).txt"));
        assert_eq!(std::fs::read(dir.path().join("c.txt")).expect("read"), b"mine");
    }
}
