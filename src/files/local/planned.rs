//! Where a path will be once made: the real path of what exists of it,
//! with the rest joined as written.

use std::fs;
use std::path::{Path, PathBuf};

/// `p` made canonical; when it does not exist (yet), its nearest existing
/// ancestor made canonical with the rest joined, `.` and `..` resolved as
/// written, so that the path it will have once made is fenced already.
pub(super) fn canonical_or_planned(p: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut rest = Vec::new();
    let mut base = absolute.as_path();
    let real = loop {
        if let Ok(real) = fs::canonicalize(base) {
            break real;
        }
        match (base.parent(), base.file_name()) {
            (Some(up), Some(name)) => {
                rest.push(name.to_os_string());
                base = up;
            }
            _ => break base.to_path_buf(),
        }
    };
    let mut out = real;
    for name in rest.iter().rev() {
        match Path::new(name).components().next() {
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::CurDir) | None => {}
            _ => out.push(name),
        }
    }
    out
}
