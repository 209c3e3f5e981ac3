//! Hashing a file where its bytes lie in the page cache, through a
//! read-only mapping, instead of copying them into this process first.
//!
//! A mapped page past the end of a file cut shorter meanwhile (by another
//! program, or a disk failing under it) faults with SIGBUS, which would end
//! the process where a read gives an error. So while a window is hashed it
//! is registered, and a SIGBUS handler installed once puts a page of zeros
//! in place of a faulting page inside a registered window and marks the
//! window cut: the hashing goes on over zeros, then gives an error instead
//! of its digest. A SIGBUS anywhere else goes to the action it had before. (The
//! way of `eina_mmap_safety` and of Sapling's indexedlog; no crate offers
//! it.)

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::files::digest::Hasher;

/// The most [`hash_mapped`] maps at once: 16 MiB.
pub(super) const WINDOW: u64 = 16 << 20;

/// A window being hashed: the addresses `start..end` of its mapping, and
/// whether a page of it faulted. Free while `start` is 0; `TAKING` while
/// it is being filled in.
struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    cut: AtomicBool,
}

const TAKING: usize = usize::MAX;

/// Windows hashed at once, at most: one more waits for a plain read.
const SLOTS: usize = 64;

static WINDOWS: [Slot; SLOTS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        cut: AtomicBool::new(false),
    }
}; SLOTS];

/// The page size, read once before the handler is installed.
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// Whether the handler is in place.
static GUARDED: AtomicBool = AtomicBool::new(false);

/// The action SIGBUS had before (the standard library's, which reports a
/// thread's stack overflow), given back for a fault outside the windows.
static BEFORE: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

/// Installs the SIGBUS handler, once.
#[allow(unsafe_code)]
fn guard() -> bool {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as usize;
        PAGE.store(page, Ordering::Release);
        // SAFETY: a handler that calls only `mmap` and `signal`, both
        // async-signal-safe, and touches only atomics.
        let r = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            let mut before: libc::sigaction = std::mem::zeroed();
            let r = libc::sigaction(libc::SIGBUS, &action, &mut before);
            if r == 0 {
                let _ = BEFORE.set(before);
            }
            r
        };
        GUARDED.store(r == 0, Ordering::Release);
    });
    GUARDED.load(Ordering::Acquire)
}

/// SIGBUS: inside a registered window, a page of zeros in place of the
/// faulting page and the window marked cut; elsewhere the action from
/// before, which the faulting access, tried again on return, then meets.
#[allow(unsafe_code)]
extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Acquire);
    for slot in &WINDOWS {
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 || start == TAKING || addr < start || addr >= slot.end.load(Ordering::Acquire)
        {
            continue;
        }
        let at = addr - addr % page;
        // SAFETY: replaces one page inside the window's own mapping, which
        // the hashing thread unmaps whole when done.
        let r = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if r != libc::MAP_FAILED {
            slot.cut.store(true, Ordering::Release);
            return;
        }
    }
    // Not a window's: the action from before takes it when the access is
    // tried again. SAFETY: `sigaction` and `signal` are async-signal-safe;
    // `BEFORE` is only read here, set before this handler was installed.
    unsafe {
        match BEFORE.get() {
            Some(before) => {
                libc::sigaction(libc::SIGBUS, before, std::ptr::null_mut());
            }
            None => {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
            }
        }
    }
}

/// A registered window, freed when dropped.
struct Registered(&'static Slot);

impl Registered {
    fn take(start: usize, end: usize) -> Option<Self> {
        let slot = WINDOWS.iter().find(|slot| {
            slot.start
                .compare_exchange(0, TAKING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })?;
        slot.cut.store(false, Ordering::Release);
        slot.end.store(end, Ordering::Release);
        slot.start.store(start, Ordering::Release);
        Some(Registered(slot))
    }

    fn cut(&self) -> bool {
        self.0.cut.load(Ordering::Acquire)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.start.store(0, Ordering::Release);
    }
}

/// A read-only mapping of a file's pages, unmapped when dropped.
struct Mapping {
    at: *mut libc::c_void,
    len: usize,
}

impl Drop for Mapping {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping made in `hash_mapped`, no longer referred to.
        unsafe { libc::munmap(self.at, self.len) };
    }
}

/// Hashes `file`'s bytes from `at` to `upto` (at most [`WINDOW`] of them)
/// where they lie in the page cache, through a read-only shared mapping
/// taken for them and given back. Gives how many were hashed, or `None`
/// where nothing was hashed because no mapping could be made (a file
/// system that cannot map, too many windows at once): plain reads then.
/// A file cut shorter than `upto` meanwhile is an error, after which
/// `hasher` holds zeros in place of the bytes that were cut.
#[allow(unsafe_code)]
pub(super) fn hash_mapped(
    file: &File,
    at: u64,
    upto: u64,
    hasher: &mut Hasher,
) -> io::Result<Option<u64>> {
    if !guard() {
        return Ok(None);
    }
    let page = PAGE.load(Ordering::Acquire) as u64;
    let base = at - at % page;
    let (Ok(len), Ok(offset)) = (usize::try_from(upto - base), libc::off_t::try_from(base)) else {
        return Ok(None);
    };
    // SAFETY: a new read-only mapping chosen by the kernel, of `len` bytes
    // of an open file from a page-aligned offset; nothing else refers to it.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            file.as_raw_fd(),
            offset,
        )
    };
    if map == libc::MAP_FAILED {
        return Ok(None);
    }
    let mapping = Mapping { at: map, len };
    let Some(window) = Registered::take(map as usize, map as usize + len) else {
        return Ok(None);
    };
    let skip = (at - base) as usize;
    // SAFETY: the mapping is `len` readable bytes, of which `skip..` are
    // the file's bytes `at..upto`. A page of them past the end of a file
    // cut meanwhile reads as zeros (see `on_sigbus`) and marks the window
    // cut; the slice is gone before the window and the mapping are.
    let bytes = unsafe { std::slice::from_raw_parts(map.cast::<u8>().add(skip), len - skip) };
    hasher.update(bytes);
    let cut = window.cut();
    drop(window);
    drop(mapping);
    if cut {
        // What `hasher` took in is not the file's: the caller drops it.
        return Err(crate::files::digest::cut_while_read());
    }
    Ok(Some(upto - at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::digest::Algo;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 13 + i / 4091) as u8).collect()
    }

    fn hex_of(data: &[u8]) -> String {
        let mut h = Algo::Blake3.hasher();
        h.update(data);
        h.hex()
    }

    #[test]
    fn a_file_cut_while_it_is_hashed_is_an_error_and_the_process_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let body = bytes(8 << 20);
        std::fs::write(&path, &body).unwrap();
        let file = File::open(&path).unwrap();
        // Cut after the length was announced: the mapping reaches past the
        // file's end.
        let kept = (1 << 20) + 100;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(kept)
            .unwrap();
        let mut h = Algo::Blake3.hasher();
        let e = hash_mapped(&file, 0, 8 << 20, &mut h).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        // Windows of several threads at once, cut and whole.
        std::thread::scope(|s| {
            for i in 0..8u64 {
                let file = &file;
                let body = &body;
                s.spawn(move || {
                    let mut h = Algo::Blake3.hasher();
                    if i % 2 == 0 {
                        assert!(hash_mapped(file, i, 4 << 20, &mut h).is_err());
                    } else {
                        let n = hash_mapped(file, i, kept, &mut h).unwrap();
                        assert_eq!(n, Some(kept - i));
                        assert_eq!(h.hex(), hex_of(&body[i as usize..kept as usize]));
                    }
                });
            }
        });
        // Every window given back.
        assert!(WINDOWS.iter().all(|w| w.start.load(Ordering::Acquire) == 0));
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_sigbus_outside_a_window_ends_the_process_as_before() {
        const CHILD: &str = "FERRY_TEST_SIGBUS_CHILD";
        if std::env::var_os(CHILD).is_some() {
            assert!(guard());
            let dir = tempfile::tempdir().unwrap();
            let file = tempfile::tempfile_in(dir.path()).unwrap();
            // SAFETY: a mapping of a page past an empty file's end, read
            // once on purpose to fault.
            unsafe {
                let map = libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                );
                assert_ne!(map, libc::MAP_FAILED);
                std::ptr::read_volatile(map.cast::<u8>());
            }
            return;
        }
        let me = std::env::current_exe().unwrap();
        let out = std::process::Command::new(me)
            .args([
                "--exact",
                "files::splice::mapped::tests::a_sigbus_outside_a_window_ends_the_process_as_before",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{out:?}");
    }
}
