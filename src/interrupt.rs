//! Ctrl-C, handled so that a person can stop a run without leaving locks behind.
//!
//! The first Ctrl-C asks the run to stop at the next safe point: the runner checks between
//! rounds, before any host switches and between batches, then gives back every lock it holds and
//! abandons what it prepared (the scripts already running on hosts finish their step first). A
//! second Ctrl-C quits at once; the remote scripts' traps then undo the step they were in, and a
//! lock between two scripts is left to a dead holder, which `--break-lock` takes.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
/// Set by commands that only read (`logs -f`): there is no safe point to wait for.
static QUIT_AT_ONCE: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process; later calls do nothing).
pub(crate) fn install() {
    let _ = ctrlc::set_handler(|| {
        if QUIT_AT_ONCE.load(Ordering::SeqCst) {
            std::process::exit(crate::error::EXIT_INTERRUPTED);
        }
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: quitting now");
            std::process::exit(crate::error::EXIT_INTERRUPTED);
        }
        eprintln!(
            "\ninterrupted: stopping at the next safe point (the current step on each host finishes, then every lock is given back); Ctrl-C again quits at once"
        );
    });
}

/// From now on the first Ctrl-C quits at once (with status 130): for a command that changes
/// nothing, such as following logs, whose remote side ends when its connection does.
pub(crate) fn quit_at_once() {
    QUIT_AT_ONCE.store(true, Ordering::SeqCst);
}

/// Whether the person asked the run to stop.
pub(crate) fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
