//! The floor for a broadcast: a bare broadcaster with no protocol at all.
//!
//! `chat-bench ideal-server` runs this: it greets each connection with the
//! chat server's greeting line (so the bench's clients know they are
//! connected), then writes every chunk any connection sends, as read, to
//! every connection with one `write` each, and nothing else: no names, no
//! buffering, no parsing. `chat-bench floor` measures one line to N
//! clients through it, the same way `connect` measures the chat server, so
//! the two figures differ only by what the chat server adds.

use std::io::{self, ErrorKind, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
const GREETING: &[u8] = b"[SERVER]: Welcome! Please enter your name:\n";

/// Serves until killed.
pub fn serve(listener: std::net::TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    {
        use std::os::fd::AsRawFd;
        // SAFETY: listen(2) again on our own socket only raises its backlog
        // (std's is 128), so a storm of connects is queued, not retried.
        unsafe {
            libc::listen(listener.as_raw_fd(), 4096);
        }
    }
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<TcpStream> = Slab::new();
    let mut events = Events::with_capacity(4096);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            let _ = s.set_nodelay(true);
                            let e = conns.vacant_entry();
                            poll.registry()
                                .register(&mut s, Token(e.key()), Interest::READABLE)?;
                            let _ = s.write(GREETING);
                            e.insert(s);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        // Out of descriptors: nothing to do but stop.
                        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                        Err(_) => {} // aborted or interrupted: next one
                    }
                }
                continue;
            }
            let key = ev.token().0;
            while let Some(s) = conns.get_mut(key) {
                match s.read(&mut buf) {
                    Ok(0) => {
                        let mut s = conns.remove(key);
                        let _ = poll.registry().deregister(&mut s);
                        break;
                    }
                    Ok(n) => {
                        for (_, to) in conns.iter_mut() {
                            let _ = to.write(&buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        let mut s = conns.remove(key);
                        let _ = poll.registry().deregister(&mut s);
                        break;
                    }
                }
            }
        }
    }
}
