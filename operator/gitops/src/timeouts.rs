//! Bounds on how long libgit2 waits for a git server, set once per process: a server that
//! stops answering fails the write-back (which is retried) instead of holding a thread for
//! ever.

use std::sync::Once;

/// Connecting: a server that does not accept in this time is unreachable.
const CONNECT_MS: i32 = 10_000;
/// Each read or write on an open connection.
const IO_MS: i32 = 60_000;

pub fn set_once() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        // SAFETY: libgit2's global options are plain integers; `Once` makes this the only
        // writer, and it runs before this process starts any git operation (every one goes
        // through `write_back`, which calls this first).
        #[allow(unsafe_code)]
        let set = unsafe {
            git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_MS)
                .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(IO_MS))
        };
        if let Err(e) = set {
            tracing::warn!(error = %e, "git server timeouts not set: libgit2's defaults apply");
        }
    });
}
