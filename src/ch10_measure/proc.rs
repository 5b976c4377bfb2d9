//! Reading Linux's `/proc`: the instruments both crowds of E004-7 are
//! measured with.
//!
//! Read it second, after the chapter's story in `mod.rs`. [`status_field`]
//! reads one number out of a `status` file's text, [`ProcStatus`] the six
//! fields this chapter needs (peak and current memory, threads, context
//! switches), and [`switches_of_live_threads`] sums the switches of every
//! thread alive. It needs nothing from the other files; `crowd.rs` is
//! built on it. Linux only: elsewhere every read is an `io::Error`.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

/// The number at the start of the value of field `name` in the text of a
/// `/proc/.../status` file: `status_field(text, "VmHWM")` reads the line
/// `VmHWM:    1620 kB` (a tab after the colon) as `1620` (memory fields are in KiB; counts such as
/// `Threads` are plain numbers). `None` if the field is missing or not a
/// number.
///
/// ```
/// use tiny_asyncio::ch10_measure::status_field;
///
/// let text = "Name:\tdemo\nVmHWM:\t    1620 kB\nThreads:\t3\n";
/// assert_eq!(status_field(text, "VmHWM"), Some(1620));
/// assert_eq!(status_field(text, "Threads"), Some(3));
/// assert_eq!(status_field(text, "VmRSS"), None);
/// assert_eq!(status_field(text, "Name"), None); // not a number
/// ```
pub fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key != name {
            return None;
        }
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The fields of a `/proc/.../status` file that this chapter measures.
///
/// For a whole process (`/proc/self/status`) the memory fields and
/// `threads` describe the process, but the two switch counts are those of
/// its **main thread** only; for one thread (`/proc/thread-self/status`)
/// the switch counts are that thread's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcStatus {
    /// `VmPeak`: the most address space ever reserved, in KiB.
    pub vm_peak_kb: u64,
    /// `VmHWM`: the most resident memory ever used (the high-water mark),
    /// in KiB.
    pub vm_hwm_kb: u64,
    /// `VmRSS`: resident memory now, in KiB.
    pub vm_rss_kb: u64,
    /// `Threads`: how many threads the process has now.
    pub threads: u64,
    /// `voluntary_ctxt_switches`: times the thread gave up the CPU because
    /// it blocked (slept, waited).
    pub voluntary_switches: u64,
    /// `nonvoluntary_ctxt_switches`: times the kernel took the CPU away.
    pub involuntary_switches: u64,
}

/// A `/proc/.../status` text lacked a field [`ProcStatus`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingField(pub &'static str);

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the status text has no numeric `{}:` line (is this Linux's /proc/<pid>/status?)",
            self.0
        )
    }
}

impl std::error::Error for MissingField {}

impl ProcStatus {
    /// Parses the text of a `/proc/.../status` file.
    ///
    /// ```
    /// use tiny_asyncio::ch10_measure::ProcStatus;
    ///
    /// let text = "VmPeak:\t 3060 kB\nVmHWM:\t 1620 kB\nVmRSS:\t 1600 kB\nThreads:\t1\n\
    ///             voluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t2\n";
    /// let status = ProcStatus::parse(text).unwrap();
    /// assert_eq!(status.vm_hwm_kb, 1620);
    /// assert_eq!(status.switches(), 9);
    /// assert!(ProcStatus::parse("Threads:\t1\n").is_err());
    /// ```
    pub fn parse(status: &str) -> Result<ProcStatus, MissingField> {
        let field = |name: &'static str| status_field(status, name).ok_or(MissingField(name));
        Ok(ProcStatus {
            vm_peak_kb: field("VmPeak")?,
            vm_hwm_kb: field("VmHWM")?,
            vm_rss_kb: field("VmRSS")?,
            threads: field("Threads")?,
            voluntary_switches: field("voluntary_ctxt_switches")?,
            involuntary_switches: field("nonvoluntary_ctxt_switches")?,
        })
    }

    /// Reads and parses the status file at `path`.
    pub fn read(path: impl AsRef<Path>) -> io::Result<ProcStatus> {
        let text = fs::read_to_string(path)?;
        ProcStatus::parse(&text)
            .map_err(|missing| io::Error::new(io::ErrorKind::InvalidData, missing))
    }

    /// This process's status (`/proc/self/status`).
    pub fn of_process() -> io::Result<ProcStatus> {
        ProcStatus::read("/proc/self/status")
    }

    /// The calling thread's status (`/proc/thread-self/status`): its own
    /// context switches.
    pub fn of_this_thread() -> io::Result<ProcStatus> {
        ProcStatus::read("/proc/thread-self/status")
    }

    /// Voluntary plus involuntary context switches.
    pub fn switches(&self) -> u64 {
        self.voluntary_switches + self.involuntary_switches
    }
}

/// Linux's errno "no such process": what reading a thread's `/proc` file
/// answers when the thread exits between listing it and reading it.
pub const ESRCH: i32 = 3;

/// The context switches (voluntary plus involuntary) of every thread of
/// this process that is alive now, summed over `/proc/self/task/*/status`.
/// Threads that have already exited are not counted (their counts are gone
/// from `/proc`); a thread that exits while we read is skipped.
pub fn switches_of_live_threads() -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir("/proc/self/task")? {
        match ProcStatus::read(entry?.path().join("status")) {
            Ok(status) => total += status.switches(),
            // A thread exiting under our feet: its file is gone (NotFound),
            // its process entry answers ESRCH, or we read half of it.
            Err(error)
                if error.kind() == io::ErrorKind::NotFound
                    || error.kind() == io::ErrorKind::InvalidData
                    || error.raw_os_error() == Some(ESRCH) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(total)
}
