//! Panics are logged at once and their backtrace (when RUST_BACKTRACE asks for one) is
//! resolved afterwards on a thread of its own. Resolving symbols takes ~150 ms with debug
//! info, and it happens inside the panic hook, before unwinding reaches the supervisor: with
//! the default hook, a crashed conference worker would wait that long for its restart.

use std::backtrace::{Backtrace, BacktraceStatus};

/// For the server: log, and print the backtrace later.
pub fn log_then_resolve_backtrace() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        tracing::error!(%thread, "panic: {info}");
        // Captured unresolved (cheap); symbolised by Display on the other thread.
        let backtrace = Backtrace::capture();
        if backtrace.status() == BacktraceStatus::Captured {
            let _ = std::thread::Builder::new()
                .name("panic-backtrace".into())
                .spawn(move || tracing::error!(%thread, "backtrace of the panic:\n{backtrace}"));
        }
    }));
}

/// For a worker process: log and exit at once (the server restarts the worker). Unwinding
/// would wait on the blocking stdin read of tokio's stdin, keeping a dead worker alive.
pub fn log_then_exit() {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("panic: {info}");
        std::process::exit(101);
    }));
}
