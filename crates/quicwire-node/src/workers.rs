//! Sockets for servers on worker threads that share one UDP port: the main thread binds
//! them all at once (`udp::bind_workers`, which also sets how the kernel routes between
//! them) and each worker's engine takes its own by index. They wait here, shared by every
//! thread of the process, until taken or released.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::{Mutex, MutexGuard};

use quicwire_core::udp;
use quicwire_core::{Error, ErrorCode};

use crate::driver::address;

/// Sockets bound for workers and not taken yet, by group.
static GROUPS: Mutex<Groups> = Mutex::new(Groups {
    sockets: None,
    next: 0,
});

struct Groups {
    sockets: Option<HashMap<u32, Vec<Option<UdpSocket>>>>,
    next: u32,
}

fn groups() -> MutexGuard<'static, Groups> {
    // A panic while held left nothing half-done: the map is whole after every statement.
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds `count` sockets on `host:port` for as many workers; the group's number and port.
pub fn bind(host: &str, port: u16, count: usize) -> Result<(u32, u16), Error> {
    let sockets = udp::bind_workers(address(host, port)?, count).map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::InvalidInput => ErrorCode::InvalidArgument,
            std::io::ErrorKind::Unsupported => ErrorCode::BackendUnavailable,
            _ => ErrorCode::Io,
        };
        Error::new(
            code,
            format!("cannot bind UDP {host}:{port} for workers: {e}"),
        )
    })?;
    let port = match sockets.first().map(UdpSocket::local_addr) {
        Some(Ok(addr)) => addr.port(),
        _ => port,
    };
    let mut groups = groups();
    groups.next = groups.next.wrapping_add(1);
    let group = groups.next;
    groups
        .sockets
        .get_or_insert_with(HashMap::new)
        .insert(group, sockets.into_iter().map(Some).collect());
    Ok((group, port))
}

/// Worker `index`'s socket of `group`, which only one caller gets.
pub fn take(group: u32, index: u32) -> Result<UdpSocket, Error> {
    groups()
        .sockets
        .as_mut()
        .and_then(|g| g.get_mut(&group))
        .and_then(|sockets| sockets.get_mut(index as usize))
        .and_then(Option::take)
        .ok_or_else(|| {
            Error::invalid_argument(format!(
                "worker socket {index} of group {group} is taken or does not exist"
            ))
        })
}

/// Closes the group's sockets no worker took (after all started, or when one failed).
pub fn release(group: u32) {
    if let Some(g) = groups().sockets.as_mut() {
        g.remove(&group);
    }
}
