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
//!
//! The downloads folder may be shared or writable by others, so no path in
//! it is trusted: the temporary files are opened with `O_NOFOLLOW` (a
//! symlink planted at their name is refused, never followed) and must be
//! regular files with no other links; the `.have.tmp` file is always
//! created anew (`O_EXCL`); the finished file is moved into place by
//! [`place_new`], which never replaces an existing entry.

use super::manifest::{Have, Manifest, ManifestError};
use super::names::place_new;
use rustix::fs::OFlags;
use rustix::io::Errno;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
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
    /// A temporary file's name holds a symlink, a special file or a file
    /// with other links, which could redirect the write elsewhere.
    #[error(
        "refusing to write {path}: {what} is in its place; remove it (and check who put it \
         there), then accept the file again"
    )]
    NotOurs {
        /// Which file.
        path: String,
        /// What was found.
        what: &'static str,
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
    move |source| {
        if source.raw_os_error() == Some(Errno::LOOP.raw_os_error()) {
            PartialError::NotOurs { path: path.display().to_string(), what: "a symbolic link" }
        } else {
            PartialError::Io { path: path.display().to_string(), source }
        }
    }
}

/// `open(2)` flags that refuse a symlink in the last path component.
fn no_follow() -> i32 {
    OFlags::NOFOLLOW.bits() as i32
}

/// Checks that `file`, just opened at `path`, is a regular file reachable
/// only by that name.
fn check_ours(file: &File, path: &Path) -> Result<(), PartialError> {
    let meta = file.metadata().map_err(io_err(path))?;
    let what = if !meta.file_type().is_file() {
        "something other than a regular file"
    } else if meta.nlink() != 1 {
        "a file with other hard links"
    } else {
        return Ok(());
    };
    Err(PartialError::NotOurs { path: path.display().to_string(), what })
}

/// Reads the recorded chunk set at `path`, if there is a sound one for a
/// file of `count` chunks. Never follows a symlink and never reads more
/// than such a record can hold.
fn read_have(path: &Path, count: u64) -> Option<Have> {
    let file = OpenOptions::new().read(true).custom_flags(no_follow()).open(path).ok()?;
    check_ours(&file, path).ok()?;
    // Two varints, then one varint of at most 10 bytes per 64 chunks.
    let limit = 20 + count.div_ceil(64).saturating_mul(10);
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > limit {
        return None;
    }
    postcard::from_bytes::<Have>(&bytes).ok().filter(|h| h.is_consistent() && h.count() == count)
}

impl Partial {
    /// Opens (or resumes) the reception of the file `manifest` describes.
    /// `name` must already be sanitised.
    pub fn open(dir: &Path, name: &str, manifest: Manifest) -> Result<Partial, PartialError> {
        let root = hex::encode(&manifest.root()[..8]);
        let data_path = dir.join(format!(".{name}.{root}.part"));
        let have_path = dir.join(format!(".{name}.{root}.have"));
        // Created if missing, resumed if present; never through a symlink.
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(no_follow())
            .open(&data_path)
            .map_err(io_err(&data_path))?;
        check_ours(&data, &data_path)?;
        data.set_len(manifest.size).map_err(io_err(&data_path))?;
        // A missing or unreadable record means starting over, never trusting bytes.
        let recorded = read_have(&have_path, manifest.count()).unwrap_or_else(|| Have::none(manifest.count()));
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
        // Left over from a crash (or planted): remove the entry itself,
        // which never touches what a symlink points at.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&tmp)(e)),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(no_follow())
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all(&bytes).map_err(io_err(&tmp))?;
        drop(file);
        // Replaces the `.have` entry itself, even if it is a symlink.
        std::fs::rename(&tmp, &self.have_path).map_err(io_err(&self.have_path))
    }

    /// Moves the complete file into place under its name (or `name (N)`
    /// when taken) and returns where it went.
    pub fn finish(self) -> Result<PathBuf, PartialError> {
        if !self.have.is_complete() {
            return Err(PartialError::Incomplete { have: self.have.len(), count: self.manifest.count() });
        }
        self.data.sync_all().map_err(io_err(&self.data_path))?;
        let target = place_new(&self.data_path, &self.dir, &self.name).map_err(io_err(&self.data_path))?;
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

    fn temp_path(dir: &Path, name: &str, m: &Manifest, kind: &str) -> PathBuf {
        dir.join(format!(".{name}.{}.{kind}", hex::encode(&m.root()[..8])))
    }

    #[test]
    fn a_symlink_planted_as_the_part_file_is_refused_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        let m = Manifest::from_reader(&[7u8; 3000][..], 1000).expect("manifest");
        std::os::unix::fs::symlink(&victim, temp_path(dir.path(), "e.bin", &m, "part")).expect("symlink");
        let err = Partial::open(dir.path(), "e.bin", m).expect_err("refused");
        assert!(matches!(err, PartialError::NotOurs { .. }), "{err:?}");
        assert!(err.to_string().contains("symbolic link") && err.to_string().contains("remove it"), "{err}");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious", "not truncated or extended");
    }

    #[test]
    fn a_hard_link_planted_as_the_part_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        let m = Manifest::from_reader(&[7u8; 3000][..], 1000).expect("manifest");
        std::fs::hard_link(&victim, temp_path(dir.path(), "h.bin", &m, "part")).expect("link");
        let err = Partial::open(dir.path(), "h.bin", m).expect_err("refused");
        assert!(matches!(err, PartialError::NotOurs { what: "a file with other hard links", .. }), "{err:?}");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
    }

    #[test]
    fn a_symlink_planted_as_the_checkpoint_file_is_replaced_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        let data = file(3_000);
        let m = Manifest::from_reader(&data[..], 1000).expect("manifest");
        let mut p = Partial::open(dir.path(), "f.bin", m.clone()).expect("open");
        p.write_chunk(0, chunk(&m, &data, 0)).expect("chunk");
        std::os::unix::fs::symlink(&victim, temp_path(dir.path(), "f.bin", &m, "have.tmp")).expect("symlink");
        p.checkpoint().expect("checkpoint");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious", "nothing written through the link");
        drop(p);
        let p = Partial::open(dir.path(), "f.bin", m.clone()).expect("reopen");
        assert_eq!(p.have().missing().collect::<Vec<_>>(), vec![1, 2], "the checkpoint was recorded");
        // A recorded set reached through a symlink is not trusted.
        let have = temp_path(dir.path(), "f.bin", &m, "have");
        std::fs::rename(&have, dir.path().join("elsewhere")).expect("move");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &have).expect("symlink");
        let p = Partial::open(dir.path(), "f.bin", m).expect("reopen");
        assert!(p.have().is_empty());
    }

    #[test]
    fn a_dangling_symlink_under_the_name_is_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("g.txt");
        std::os::unix::fs::symlink(dir.path().join("missing"), &link).expect("symlink");
        let m = Manifest::from_reader(&b"theirs"[..], 1000).expect("manifest");
        let mut p = Partial::open(dir.path(), "g.txt", m).expect("open");
        p.write_chunk(0, b"theirs").expect("chunk");
        assert_eq!(p.finish().expect("finish"), dir.path().join("g (1).txt"));
        assert!(std::fs::symlink_metadata(&link).expect("still there").file_type().is_symlink());
        assert!(!dir.path().join("missing").exists());
    }
}
