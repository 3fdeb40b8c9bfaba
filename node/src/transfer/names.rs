//! Safe file names for received files, free of IO apart from checking what
//! exists in the downloads folder.
//!
//! An offered name is only a suggestion from a peer: it is cut to its last
//! path component, stripped of control and reserved characters, kept under
//! 255 bytes, and never `.`/`..` or empty, so nothing can land outside the
//! downloads folder or replace an existing file.

use std::path::{Path, PathBuf};

/// Longest name kept, in bytes (common file system limit).
const MAX_NAME: usize = 255;

/// A name safe to create inside the downloads folder.
pub fn sanitize(offered: &str) -> String {
    let last = offered.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut name = if trimmed.is_empty() { "file".to_owned() } else { trimmed.to_owned() };
    if name.len() > MAX_NAME {
        // Keep the extension when it is short, cut the stem on a char boundary.
        let ext = Path::new(&name).extension().and_then(|e| e.to_str()).filter(|e| e.len() <= 16).map(str::to_owned);
        let budget = MAX_NAME - ext.as_ref().map_or(0, |e| e.len() + 1);
        let mut cut = budget;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        if let Some(e) = ext {
            name.push('.');
            name.push_str(&e);
        }
    }
    name
}

/// `dir/name`, or `dir/stem (N).ext` with the first N that does not exist.
pub fn unused_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let p = Path::new(name);
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or(name);
    let ext = p.extension().and_then(|e| e.to_str());
    (1u32..)
        .map(|n| match ext {
            Some(e) => dir.join(format!("{stem} ({n}).{e}")),
            None => dir.join(format!("{stem} ({n})")),
        })
        .find(|c| !c.exists())
        .unwrap_or(first)
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
    fn long_names_are_cut_on_a_char_boundary_keeping_the_extension() {
        let long = format!("{}.jpeg", "é".repeat(300));
        let s = sanitize(&long);
        assert!(s.len() <= MAX_NAME, "{}", s.len());
        assert!(s.ends_with(".jpeg"));
        assert!(s.starts_with('é'));
    }

    #[test]
    fn existing_files_are_never_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(unused_path(dir.path(), "a.txt"), dir.path().join("a.txt"));
        std::fs::write(dir.path().join("a.txt"), b"x").expect("write");
        std::fs::write(dir.path().join("a (1).txt"), b"x").expect("write");
        assert_eq!(unused_path(dir.path(), "a.txt"), dir.path().join("a (2).txt"));
        std::fs::write(dir.path().join("README"), b"x").expect("write");
        assert_eq!(unused_path(dir.path(), "README"), dir.path().join("README (1)"));
    }
}
