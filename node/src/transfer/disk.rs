//! Free space on the disk that will hold a received file.

use std::path::Path;

/// Space kept free on top of a file, so accepting it never fills the disk.
pub const RESERVE: u64 = 64 << 20;

/// Bytes available to this user on the file system holding `dir`.
pub fn available(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Checks that `dir` can take `needed` more bytes plus [`RESERVE`]; the
/// error says how much is missing and what to do.
pub fn check_room(dir: &Path, needed: u64) -> Result<(), String> {
    let free = available(dir).map_err(|e| format!("cannot tell how much space {} has: {e}", dir.display()))?;
    room(free, needed).map_err(|short| {
        format!(
            "not enough disk space in {}: the file needs {} (plus {} kept spare) and {} is free, {} short; \
             free some space or accept it into another folder with --to",
            dir.display(),
            human(needed),
            human(RESERVE),
            human(free),
            human(short)
        )
    })
}

/// `Err(shortfall)` when `free` cannot take `needed` plus the reserve.
pub fn room(free: u64, needed: u64) -> Result<(), u64> {
    let want = needed.saturating_add(RESERVE);
    if free >= want { Ok(()) } else { Err(want - free) }
}

/// A byte count for people: `1.5 GiB`, `300 KiB`, `12 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_counts_the_reserve() {
        assert_eq!(room(RESERVE + 100, 100), Ok(()));
        assert_eq!(room(RESERVE + 99, 100), Err(1));
        assert_eq!(room(0, u64::MAX), Err(u64::MAX));
    }

    #[test]
    fn the_current_folder_has_some_space_and_not_an_exabyte() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(available(dir.path()).expect("statvfs") > 0);
        let err = check_room(dir.path(), 1 << 60).expect_err("an exabyte does not fit");
        assert!(err.contains("not enough disk space") && err.contains("short"), "{err}");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(200 << 20), "200.0 MiB");
    }
}
