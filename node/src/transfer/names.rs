//! Safe file names for received files, and placing a finished file under
//! one without ever replacing what is already there.
//!
//! An offered name is only a suggestion from a peer: it is cut to its last
//! path component, stripped of control, reserved and invisible formatting
//! characters (so a right-to-left override cannot make `evil\u{202e}fdp.exe`
//! look like `evilexe.pdf`), kept under 255 bytes, and never `.`/`..` or
//! empty, so nothing can land outside the downloads folder.
//!
//! [`place_new`] moves a finished file to the first free name among `NAME`,
//! `NAME (1)`, `NAME (2)` …, with a rename that refuses to replace an
//! existing entry (`renameat2` with `RENAME_NOREPLACE`, or a hard link then
//! an unlink where that is unsupported). The check for a free name and the
//! move are one atomic step, so a file that appears in between, a dangling
//! symlink or a concurrent transfer under the same name is never replaced.

use rustix::fs::{CWD, RenameFlags, renameat_with};
use rustix::io::Errno;
use std::io;
use std::path::{Path, PathBuf};

/// Longest name kept, in bytes (common file system limit).
const MAX_NAME: usize = 255;
/// Most numbered names tried before giving up.
const MAX_TRIES: u32 = 10_000;

/// Whether `c` is an invisible formatting character that can disguise how a
/// name or a line of text reads: the bidirectional embeddings, overrides,
/// isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
/// U+061C), zero-width and invisible characters (U+200B, U+2060–U+2064,
/// U+FEFF, U+00AD, U+180E, U+034F, the Hangul fillers), the deprecated
/// format controls U+206A–U+206F, the interlinear annotation marks
/// U+FFF9–U+FFFB and the line and paragraph separators U+2028, U+2029.
///
/// The zero-width joiner and non-joiner (U+200D, U+200C) are kept: emoji
/// sequences and several scripts need them, and they cannot reorder text.
pub fn is_hidden_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{180e}'
            | '\u{200b}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// A name safe to create inside the downloads folder.
pub fn sanitize(offered: &str) -> String {
    let last = offered.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|&c| !is_hidden_format(c))
        .map(|c| if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let name = if trimmed.is_empty() { "file" } else { trimmed };
    fit(name, "")
}

/// `name` with `suffix` added before its extension, cut on a char boundary
/// (keeping the extension when it is short) so the result is at most
/// [`MAX_NAME`] bytes.
fn fit(name: &str, suffix: &str) -> String {
    let mut ext = Path::new(name).extension().and_then(|e| e.to_str()).filter(|e| e.len() < name.len());
    if name.len() + suffix.len() > MAX_NAME {
        ext = ext.filter(|e| e.len() <= 16);
    }
    let stem = ext.map_or(name, |e| &name[..name.len() - e.len() - 1]);
    let budget = MAX_NAME - suffix.len() - ext.map_or(0, |e| e.len() + 1);
    let mut cut = stem.len().min(budget);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = format!("{}{suffix}", &stem[..cut]);
    if let Some(e) = ext {
        out.push('.');
        out.push_str(e);
    }
    out
}

/// The names tried in turn for a file called `name`: `name`, then
/// `stem (1).ext`, `stem (2).ext`, … up to [`MAX_TRIES`].
pub fn candidates(name: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(name.to_owned()).chain((1..MAX_TRIES).map(move |n| fit(name, &format!(" ({n})"))))
}

/// Moves the file at `from` into `dir` under the first free name of
/// [`candidates`]`(name)` and returns where it went. Never replaces an
/// existing entry of any kind; `from` must be in the same file system.
pub fn place_new(from: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    place(from, dir, name, Move::RenameNoReplace)
}

/// How [`place`] moves a file without replacing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    /// `renameat2(…, RENAME_NOREPLACE)`, falling back to [`Move::Link`]
    /// where the file system does not support it.
    RenameNoReplace,
    /// A hard link to the new name, then removing the old one.
    Link,
}

fn place(from: &Path, dir: &Path, name: &str, mut how: Move) -> io::Result<PathBuf> {
    for candidate in candidates(name) {
        let target = dir.join(&candidate);
        if how == Move::RenameNoReplace {
            match renameat_with(CWD, from, CWD, &target, RenameFlags::NOREPLACE) {
                Ok(()) => return Ok(target),
                Err(Errno::EXIST) => continue,
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => how = Move::Link,
                Err(e) => return Err(e.into()),
            }
        }
        // A hard link is never created over an existing entry.
        match std::fs::hard_link(from, &target) {
            Ok(()) => {
                std::fs::remove_file(from)?;
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} already holds {MAX_TRIES} files named like {name}; move some away", dir.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_reserved_names_stay_inside() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("..\\..\\Windows\\system.ini"), "system.ini");
        assert_eq!(sanitize("/abs/path/report.pdf"), "report.pdf");
        assert_eq!(sanitize(".."), "file");
        assert_eq!(sanitize("."), "file");
        assert_eq!(sanitize(""), "file");
        assert_eq!(sanitize("dir/"), "file");
        assert_eq!(sanitize(".bashrc"), "bashrc");
        assert_eq!(sanitize("a\u{0}b\nc:d?.txt"), "a_b_c_d_.txt");
        assert_eq!(sanitize("  spaced name.txt  "), "spaced name.txt");
        assert_eq!(sanitize("Grüße 👍.png"), "Grüße 👍.png");
    }

    #[test]
    fn bidi_controls_and_invisible_characters_are_removed() {
        // Shown raw, this reads "invoiceexe.pdf"; it is an .exe.
        assert_eq!(sanitize("invoice\u{202e}fdp.exe"), "invoicefdp.exe");
        for c in ('\u{202a}'..='\u{202e}').chain('\u{2066}'..='\u{2069}').chain([
            '\u{200e}', '\u{200f}', '\u{061c}', '\u{200b}', '\u{2060}', '\u{feff}', '\u{00ad}', '\u{2028}', '\u{2029}',
            '\u{3164}',
        ]) {
            assert_eq!(sanitize(&format!("a{c}b.txt")), "ab.txt", "U+{:04X}", c as u32);
        }
        assert_eq!(sanitize("\u{202e}\u{2066}"), "file");
        assert_eq!(sanitize("\u{200f}.bashrc"), "bashrc", "a hidden mark cannot shield a leading dot");
        // Joiners build emoji and shape scripts; they cannot reorder text.
        assert_eq!(sanitize("family 👨\u{200d}👩\u{200d}👧.png"), "family 👨\u{200d}👩\u{200d}👧.png");
        assert_eq!(sanitize("می\u{200c}خواهم.txt"), "می\u{200c}خواهم.txt");
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary_keeping_the_extension() {
        let long = format!("{}.jpeg", "é".repeat(300));
        let s = sanitize(&long);
        assert!(s.len() <= MAX_NAME, "{}", s.len());
        assert!(s.ends_with(".jpeg"));
        assert!(s.starts_with('é'));
        for numbered in candidates(&s).take(3).skip(1) {
            assert!(numbered.len() <= MAX_NAME, "{}", numbered.len());
            assert!(numbered.ends_with(").jpeg"), "{numbered}");
        }
    }

    #[test]
    fn numbered_names_go_before_the_extension() {
        let names: Vec<String> = candidates("a.txt").take(3).collect();
        assert_eq!(names, ["a.txt", "a (1).txt", "a (2).txt"]);
        let names: Vec<String> = candidates("README").take(2).collect();
        assert_eq!(names, ["README", "README (1)"]);
        let names: Vec<String> = candidates("archive.tar.gz").take(2).collect();
        assert_eq!(names, ["archive.tar.gz", "archive.tar (1).gz"]);
    }

    fn new_file(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, body).expect("write");
        path
    }

    #[test]
    fn existing_entries_are_never_replaced() {
        for how in [Move::RenameNoReplace, Move::Link] {
            let dir = tempfile::tempdir().expect("tempdir");
            let d = dir.path();
            let got = place(&new_file(d, ".in", b"1"), d, "a.txt", how).expect("place");
            assert_eq!(got, d.join("a.txt"));
            new_file(d, "a (1).txt", b"mine");
            let got = place(&new_file(d, ".in", b"2"), d, "a.txt", how).expect("place");
            assert_eq!(got, d.join("a (2).txt"), "{how:?}");
            // A dangling symlink is an existing entry too, though
            // `Path::exists` says it is not.
            std::os::unix::fs::symlink(d.join("nowhere"), d.join("b.txt")).expect("symlink");
            let got = place(&new_file(d, ".in", b"3"), d, "b.txt", how).expect("place");
            assert_eq!(got, d.join("b (1).txt"), "{how:?}");
            assert!(std::fs::symlink_metadata(d.join("b.txt")).expect("link").file_type().is_symlink());
            assert!(!d.join("nowhere").exists(), "nothing was written through the link");
            assert_eq!(std::fs::read(d.join("a.txt")).expect("read"), b"1");
            assert_eq!(std::fs::read(d.join("a (1).txt")).expect("read"), b"mine");
            assert_eq!(std::fs::read(d.join("a (2).txt")).expect("read"), b"2");
            assert!(!d.join(".in").exists(), "{how:?}: the source is moved, not copied");
        }
    }

    /// Many transfers finishing at once under one name each keep their file.
    #[test]
    fn concurrent_placements_under_one_name_all_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let threads: Vec<_> = (0..16u8)
            .map(|i| {
                let from = new_file(d, &format!(".part{i}"), &[i]);
                let d = d.to_owned();
                std::thread::spawn(move || place_new(&from, &d, "same.bin").expect("place"))
            })
            .collect();
        let mut placed: Vec<PathBuf> = threads.into_iter().map(|t| t.join().expect("thread")).collect();
        placed.sort();
        placed.dedup();
        assert_eq!(placed.len(), 16, "every file got its own name");
        let mut bodies: Vec<u8> = placed.iter().flat_map(|p| std::fs::read(p).expect("read")).collect();
        bodies.sort_unstable();
        assert_eq!(bodies, (0..16).collect::<Vec<u8>>());
    }
}
