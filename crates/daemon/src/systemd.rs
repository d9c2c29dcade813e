//! The two parts of systemd's service protocol the daemon speaks, without libsystemd: a
//! listening socket passed down by socket activation (`LISTEN_PID`, `LISTEN_FDS`, fd 3) and
//! the readiness notification (`READY=1` on `NOTIFY_SOCKET`) that `Type=notify` waits for.
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// The unix socket the service manager passed, if this process was socket-activated.
pub fn listen_socket() -> Result<Option<UnixListener>, String> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if !ours || count < 1 {
        return Ok(None);
    }
    if count > 1 {
        tracing::warn!(
            fds = count,
            "the service manager passed more than one socket; serving the first"
        );
    }
    // SAFETY: fstat only reads the descriptor's metadata.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(LISTEN_FDS_START, &mut st) } != 0
        || st.st_mode & libc::S_IFMT != libc::S_IFSOCK
    {
        return Err(
            "LISTEN_FDS is set but descriptor 3 is not a socket: check kuryr.socket".into(),
        );
    }
    // SAFETY: descriptor 3 is a socket this process was handed and nothing else owns it.
    let listener = unsafe { UnixListener::from_raw_fd(LISTEN_FDS_START) };
    unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_SETFD, libc::FD_CLOEXEC) };
    listener.local_addr().map_err(|e| {
        format!("the socket the service manager passed is not a unix socket ({e}): ListenStream= must be a path")
    })?;
    Ok(Some(listener))
}

/// Sends `state` (e.g. `READY=1`) to the service manager; `false` when none listens.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let target = target.to_string_lossy().into_owned();
    let sock = UnixDatagram::unbound()?;
    match target.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(state.as_bytes(), &target)?;
        }
    }
    Ok(true)
}
