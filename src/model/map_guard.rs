//! A process-wide guard that turns a fault on a vanished page of one of our read-only file
//! maps into zeros and a "poisoned" flag, instead of a SIGBUS that kills the process.
//!
//! Large models are memory-mapped and walked in place. When another process truncates the
//! file while it is mapped (an exporter or `cp` rewriting it in place), the next read of a
//! page past the new end raises SIGBUS, whose default action ends the process — for the
//! language server, the whole editing session. The guard:
//!
//! - keeps the address range of every live model map in a fixed-size table of atomics
//!   ([`SLOTS`] entries, lock-free, so the signal handler can read it);
//! - installs, once per process, a SIGBUS handler (`SA_SIGINFO | SA_ONSTACK`). When the
//!   faulting address lies inside a registered map, the handler maps anonymous zero pages
//!   (`MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS`, read-only) over the map from the faulting
//!   page to its end, sets that map's poisoned flag and returns: the interrupted read
//!   continues and sees zeros. Any other SIGBUS goes to the handler that was installed
//!   before (Rust's own stack-overflow handler, a sanitizer's), or, when there was none,
//!   the default action is restored and the fault repeats and ends the process as before;
//! - unregisters a map when it is dropped, before it is unmapped, so an address reused by a
//!   later mapping is never mistaken for ours.
//!
//! Reading zeros is harmless only because every operation that reads through a map asks
//! [`Registration::poisoned`] (through `ModelFile::check_unchanged`) when it finishes and
//! turns a poisoned map into an error, so nothing computed from the zeros is ever written
//! or shown as a result.
//!
//! Limits: the handler calls `mmap`, which POSIX does not list as async-signal-safe (it is a
//! plain system call on Linux and macOS); only SIGBUS is handled (a truncated map faults
//! with SIGBUS on Linux and macOS); when the table is full, or the handler cannot be
//! installed, or the platform is not Linux, Android or macOS, [`register`] returns `None`
//! and the caller reads the file into memory instead of mapping it.

#[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
mod imp {
    use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    /// How many maps can be guarded at once.
    pub const SLOTS: usize = 1024;

    const FREE: u8 = 0;
    const CLAIMED: u8 = 1;
    const ACTIVE: u8 = 2;

    struct Slot {
        state: AtomicU8,
        start: AtomicUsize,
        len: AtomicUsize,
        poisoned: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Slot = Slot {
        state: AtomicU8::new(FREE),
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        poisoned: AtomicBool::new(false),
    };

    static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];

    /// The handler that was installed before ours; set before ours is installed.
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
    /// The page size; set before our handler is installed.
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    /// Whether our handler is installed (decided once per process).
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    static ENABLED: AtomicBool = AtomicBool::new(true);

    /// A guarded map's entry in the table; dropping it unregisters the map.
    #[derive(Debug)]
    pub struct Registration {
        slot: usize,
    }

    impl Registration {
        /// Whether a read of this map hit a vanished page (and read zeros instead).
        pub fn poisoned(&self) -> bool {
            TABLE
                .get(self.slot)
                .is_some_and(|s| s.poisoned.load(Ordering::SeqCst))
        }
    }

    impl Drop for Registration {
        fn drop(&mut self) {
            if let Some(s) = TABLE.get(self.slot) {
                s.state.store(FREE, Ordering::SeqCst);
            }
        }
    }

    /// Guards the read-only map at `start..start + len`; `None` when it cannot be guarded.
    ///
    /// # Safety
    ///
    /// `start..start + len` must be a read-only file mapping that stays mapped, and is
    /// read only through shared references, until the registration is dropped: a fault in
    /// it replaces its pages with zero pages.
    pub unsafe fn register(start: *const u8, len: usize) -> Option<Registration> {
        if !ENABLED.load(Ordering::Relaxed) || len == 0 {
            return None;
        }
        if !*INSTALLED.get_or_init(install) {
            return None;
        }
        for (i, s) in TABLE.iter().enumerate() {
            if s.state
                .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                s.start.store(start as usize, Ordering::SeqCst);
                s.len.store(len, Ordering::SeqCst);
                s.poisoned.store(false, Ordering::SeqCst);
                s.state.store(ACTIVE, Ordering::SeqCst);
                return Some(Registration { slot: i });
            }
        }
        None
    }

    /// Turns the guard off for maps made from now on, which are then mapped unguarded as
    /// before the guard existed (tests that show what the guard prevents).
    #[doc(hidden)]
    pub fn set_enabled(on: bool) {
        ENABLED.store(on, Ordering::Relaxed);
    }

    /// Whether the guard is on (it is unless a test turned it off).
    pub fn enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }

    fn install() -> bool {
        // SAFETY: sysconf and sigaction with valid pointers to initialised structures; the
        // previous disposition and the page size are published before our handler is
        // installed, so the handler never sees them unset.
        unsafe {
            let Ok(page) = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)) else {
                return false;
            };
            if page == 0 || !page.is_power_of_two() {
                return false;
            }
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) != 0 {
                return false;
            }
            PAGE.store(page, Ordering::SeqCst);
            if PREVIOUS.set(previous).is_err() {
                return false;
            }
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut ours.sa_mask);
            libc::sigaction(libc::SIGBUS, &ours, std::ptr::null_mut()) == 0
        }
    }

    /// The SIGBUS handler; async-signal-safe apart from `mmap` (see the module comment).
    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let page = PAGE.load(Ordering::SeqCst);
        let Some(previous) = PREVIOUS.get().filter(|_| page != 0) else {
            return default_action(sig);
        };
        // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
        let addr = if info.is_null() {
            0
        } else {
            unsafe { (*info).si_addr() as usize }
        };
        for s in TABLE.iter() {
            if s.state.load(Ordering::SeqCst) != ACTIVE {
                continue;
            }
            let start = s.start.load(Ordering::SeqCst);
            let len = s.len.load(Ordering::SeqCst);
            if addr < start || addr - start >= len {
                continue;
            }
            let page_start = addr & !(page - 1);
            let end = (start + len).div_ceil(page) * page;
            // SAFETY: replaces pages of our own read-only map (which stays mapped until its
            // registration is dropped) with zero pages of the same protection.
            let p = unsafe {
                libc::mmap(
                    page_start as *mut libc::c_void,
                    end - page_start,
                    libc::PROT_READ,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                break;
            }
            s.poisoned.store(true, Ordering::SeqCst);
            return;
        }
        chain(previous, sig, info, ctx);
    }

    /// Hands a SIGBUS that is not ours to the handler installed before.
    fn chain(
        prev: &libc::sigaction,
        sig: libc::c_int,
        info: *mut libc::siginfo_t,
        ctx: *mut libc::c_void,
    ) {
        let h = prev.sa_sigaction;
        if h == libc::SIG_DFL || h == libc::SIG_IGN {
            // An ignored synchronous SIGBUS would repeat forever: restore the default, and
            // the faulting instruction, run again, ends the process as it would have.
            return default_action(sig);
        }
        // SAFETY: `h` is the address of the handler installed before ours, with the
        // signature its flags declare.
        unsafe {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(h);
                f(sig, info, ctx);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
                f(sig);
            }
        }
    }

    fn default_action(sig: libc::c_int) {
        // SAFETY: sigaction with a zeroed (SIG_DFL) action is async-signal-safe.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
mod imp {
    /// How many maps can be guarded at once (none on this platform).
    pub const SLOTS: usize = 0;

    /// A guarded map's entry (never made on this platform).
    #[derive(Debug)]
    pub struct Registration(());

    impl Registration {
        /// Whether a read of this map hit a vanished page.
        pub fn poisoned(&self) -> bool {
            false
        }
    }

    /// Guards a map: not supported on this platform.
    ///
    /// # Safety
    ///
    /// None needed here; the same contract as on the supported platforms.
    pub unsafe fn register(_start: *const u8, _len: usize) -> Option<Registration> {
        None
    }

    /// Turns the guard off (no effect on this platform).
    #[doc(hidden)]
    pub fn set_enabled(_on: bool) {}

    /// Whether the guard is on (it is, in the sense that maps are not trusted: [`register`]
    /// fails and large files are read into memory).
    pub fn enabled() -> bool {
        true
    }
}

pub use imp::{enabled, register, set_enabled, Registration, SLOTS};

#[cfg(all(
    test,
    any(target_os = "linux", target_os = "android", target_os = "macos")
))]
mod tests {
    use super::*;

    /// One test fills the table: the others wait.
    static TABLE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        TABLE_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mapped(dir: &std::path::Path, name: &str, fill: u8) -> (std::fs::File, memmap2::Mmap) {
        let path = dir.join(name);
        std::fs::write(&path, vec![fill; 3 * 65536]).expect("write");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        // SAFETY: a private test file; its truncation is what is being tested.
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
        (file, map)
    }

    #[test]
    fn a_read_of_a_vanished_page_sees_zeros_and_poisons_only_its_map() {
        let _table = lock();
        let dir = tempfile::tempdir().expect("tempdir");
        let (a_file, a) = mapped(dir.path(), "a", 7);
        let (_b_file, b) = mapped(dir.path(), "b", 9);
        // SAFETY: both are read-only maps that outlive their registrations.
        let ga = unsafe { register(a.as_ptr(), a.len()) }.expect("guard a");
        let gb = unsafe { register(b.as_ptr(), b.len()) }.expect("guard b");
        a_file.set_len(100).expect("truncate");
        // The first page still holds the file's first 100 bytes; past them, zeros.
        assert_eq!(a.first().copied(), Some(7));
        assert_eq!(a.last().copied(), Some(0));
        assert_eq!(a.iter().map(|&x| u64::from(x)).sum::<u64>(), 700);
        assert!(ga.poisoned());
        assert!(!gb.poisoned());
        assert!(b.iter().all(|&x| x == 9));
        drop((ga, gb));
    }

    #[test]
    fn slots_are_reused_after_drop() {
        let _table = lock();
        let dir = tempfile::tempdir().expect("tempdir");
        let (_f, m) = mapped(dir.path(), "m", 1);
        for _ in 0..SLOTS + 10 {
            // SAFETY: a read-only map that outlives the registrations.
            let g = unsafe { register(m.as_ptr(), m.len()) }.expect("a free slot");
            assert!(!g.poisoned());
        }
        let held: Vec<Registration> = (0..SLOTS)
            // SAFETY: as above.
            .map_while(|_| unsafe { register(m.as_ptr(), m.len()) })
            .collect();
        // Other tests of this binary may hold a few slots meanwhile.
        assert!(
            held.len() + 8 >= SLOTS && held.len() <= SLOTS,
            "{}",
            held.len()
        );
        // SAFETY: as above.
        let refused = unsafe { register(m.as_ptr(), m.len()) };
        assert!(refused.is_none(), "a full table refuses");
        drop(held);
    }
}
