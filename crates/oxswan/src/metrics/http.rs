//! The metrics endpoint: `GET /metrics` over HTTP/1.x on std's `TcpListener`, one request per
//! connection. Whoever reaches the port is a stranger: a request head is read for at most
//! [`Limits::timeout`] and [`Limits::max_request`] octets (httparse parses it), at most
//! [`Limits::connections`] are served at once, and everything else gets a short error and the
//! connection closed. Nothing here touches the IKE thread: the answer is the last published
//! snapshot.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arc_swap::ArcSwap;

use super::{Snapshot, render};

/// What one client may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are answered 503 and closed.
    pub connections: usize,
    /// The longest request head (request line and headers).
    pub max_request: usize,
    /// How long a client has to send its request head, and to take the answer.
    pub timeout: Duration,
}

impl Default for Limits {
    /// Prometheus sends one short GET per scrape and waits 10 s by default: a few connections, a
    /// head of a few hundred octets and 5 s leave it room and a slow or hostile client none.
    fn default() -> Self {
        Self { connections: 8, max_request: 8 * 1024, timeout: Duration::from_secs(5) }
    }
}

/// The endpoint, serving until the process ends.
#[derive(Debug)]
pub struct Server {
    /// Where it listens (the port the kernel chose, for port 0).
    pub local: SocketAddr,
    /// Connections being served (the tests watch it).
    #[cfg_attr(not(test), allow(dead_code))]
    active: Arc<AtomicUsize>,
}

impl Server {
    /// Connections being served now.
    #[cfg(test)]
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// Listens on `at` and serves the snapshot in `published` from a thread of its own.
pub fn start(at: SocketAddr, published: Arc<ArcSwap<Snapshot>>, limits: Limits) -> anyhow::Result<Server> {
    let listener = TcpListener::bind(at).with_context(|| {
        format!("[daemon] metrics: cannot listen on {at} (in use, or not an address of this host?)")
    })?;
    let local = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    let counted = active.clone();
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || accept_loop(&listener, &published, limits, &counted))?;
    Ok(Server { local, active })
}

/// Takes one off the count of active connections when its thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn accept_loop(listener: &TcpListener, published: &Arc<ArcSwap<Snapshot>>, limits: Limits, active: &Arc<AtomicUsize>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if active.fetch_add(1, Ordering::Relaxed) >= limits.connections {
            let _slot = Slot(active.clone());
            // Without waiting: a full socket buffer loses the answer, not the accepting thread.
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write_all(&response(503, "Service Unavailable", "too many connections\n", &[]));
            continue;
        }
        let slot = Slot(active.clone());
        let published = published.clone();
        let spawned = std::thread::Builder::new().name("metrics-conn".into()).spawn(move || {
            let _slot = slot;
            serve(stream, &published, limits);
        });
        if let Err(e) = spawned {
            tracing::warn!(target: "daemon", "metrics: cannot start a thread for a connection: {e}");
        }
    }
}

/// What a request head asked for, or why it is refused.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// `GET /metrics` (`head`: HEAD, the same without the body).
    Metrics { head: bool },
    /// An error status and its text.
    Refused(u16, &'static str, &'static str),
}

/// Reads a request head within the limits.
fn read_head(stream: &mut TcpStream, limits: Limits) -> Asked {
    let deadline = Instant::now() + limits.timeout;
    let mut buf = vec![0u8; limits.max_request];
    let mut len = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Asked::Refused(408, "Request Timeout", "no complete request in time\n");
        }
        let Some(room) = buf.get_mut(len..) else { return too_large() };
        if room.is_empty() {
            return too_large();
        }
        match stream.read(room) {
            Ok(0) => return Asked::Refused(400, "Bad Request", "incomplete request\n"),
            Ok(n) => len = len.saturating_add(n),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Asked::Refused(408, "Request Timeout", "no complete request in time\n");
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Asked::Refused(400, "Bad Request", "unreadable request\n"),
        }
        match parse(buf.get(..len).unwrap_or_default()) {
            Some(asked) => return asked,
            None => continue,
        }
    }
}

fn too_large() -> Asked {
    Asked::Refused(431, "Request Header Fields Too Large", "request head too long\n")
}

/// What a request head says; `None` while it is incomplete.
fn parse(head: &[u8]) -> Option<Asked> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(too_large()),
        Err(_) => Some(Asked::Refused(400, "Bad Request", "not an HTTP/1.x request\n")),
        Ok(httparse::Status::Complete(_)) => {
            // The path without a query (Prometheus may add parameters of its own).
            let path = req.path.unwrap_or_default().split('?').next().unwrap_or_default();
            Some(match (req.method.unwrap_or_default(), path) {
                (m, _) if m != "GET" && m != "HEAD" => Asked::Refused(405, "Method Not Allowed", "GET /metrics\n"),
                (m, "/metrics") => Asked::Metrics { head: m == "HEAD" },
                _ => Asked::Refused(404, "Not Found", "oxswan serves /metrics only\n"),
            })
        }
    }
}

/// An HTTP/1.1 response that closes the connection.
fn response(status: u16, reason: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !extra.iter().any(|(k, _)| *k == "Content-Type") {
        head.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn serve(mut stream: TcpStream, published: &ArcSwap<Snapshot>, limits: Limits) {
    let _ = stream.set_write_timeout(Some(limits.timeout));
    let answer = match read_head(&mut stream, limits) {
        Asked::Metrics { head } => {
            let text = render(published.load_full());
            let ct = [("Content-Type", prometheus_client::encoding::prometheus_text::CONTENT_TYPE)];
            let mut r = response(200, "OK", &text, &ct);
            if head {
                r.truncate(r.len().saturating_sub(text.len()));
            }
            r
        }
        Asked::Refused(405, reason, body) => response(405, reason, body, &[("Allow", "GET, HEAD")]),
        Asked::Refused(status, reason, body) => response(status, reason, body, &[]),
    };
    let _ = stream.write_all(&answer);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

    use super::*;

    fn limits() -> Limits {
        Limits { connections: 3, max_request: 1024, timeout: Duration::from_millis(400) }
    }

    fn server() -> (Server, Arc<ArcSwap<Snapshot>>) {
        let published = Arc::new(ArcSwap::from_pointee(Snapshot { handshakes: 7, ..Snapshot::default() }));
        let s = start("127.0.0.1:0".parse().unwrap(), published.clone(), limits()).unwrap();
        (s, published)
    }

    /// Sends `request` and reads the answer to the end (the server closes).
    fn ask(at: SocketAddr, request: &[u8]) -> String {
        let mut c = TcpStream::connect(at).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn status(answer: &str) -> &str {
        answer.split("\r\n").next().unwrap()
    }

    fn wait_idle(s: &Server) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.active() != 0 {
            assert!(Instant::now() < deadline, "{} connections still served", s.active());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn get_metrics_answers_the_published_snapshot_in_the_text_format() {
        let (s, published) = server();
        let a = ask(s.local, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n");
        assert_eq!(status(&a), "HTTP/1.1 200 OK");
        assert!(a.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{a}");
        let (head, body) = a.split_once("\r\n\r\n").unwrap();
        assert!(head.split("\r\n").any(|h| h == format!("Content-Length: {}", body.len())), "{head}");
        assert!(body.contains("\noxswan_ike_handshakes_total 7\n"), "{body}");
        assert_eq!(body, render(published.load_full()));
        // A new snapshot is what the next scrape sees; a query string is ignored.
        published.store(Arc::new(Snapshot { handshakes: 8, ..Snapshot::default() }));
        let a = ask(s.local, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(a.contains("\noxswan_ike_handshakes_total 8\n"), "{a}");
        // HEAD: the same head, no body.
        let a = ask(s.local, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status(&a), "HTTP/1.1 200 OK");
        assert!(a.ends_with("\r\n\r\n"), "{a}");
        wait_idle(&s);
    }

    #[test]
    fn other_paths_methods_and_garbage_are_refused() {
        let (s, _) = server();
        for (req, want) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "HTTP/1.1 404 Not Found"),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
            (b"GET /../metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
            (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "HTTP/1.1 400 Bad Request"),
            (b"GET /metrics HTTP/9.9\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (b"GET /metrics\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ] {
            let a = ask(s.local, req);
            assert_eq!(status(&a), want, "{}", String::from_utf8_lossy(req));
            if want.contains("405") {
                assert!(a.contains("\r\nAllow: GET, HEAD\r\n"), "{a}");
            }
        }
        // Half a request, then the client's end closed: refused, and the thread is gone.
        let mut c = TcpStream::connect(s.local).unwrap();
        c.write_all(b"GET /metr").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        assert_eq!(status(&out), "HTTP/1.1 400 Bad Request");
        wait_idle(&s);
    }

    #[test]
    fn an_oversized_request_is_refused_without_reading_it_all() {
        let (s, _) = server();
        let mut req = b"GET /metrics HTTP/1.1\r\n".to_vec();
        while req.len() < 64 * 1024 {
            req.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        // The server answers after `max_request` octets; the rest may meet a closed socket.
        let mut c = TcpStream::connect(s.local).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(&req);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        assert_eq!(status(&out), "HTTP/1.1 431 Request Header Fields Too Large");
        // Many short headers are too large as well.
        let mut req = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            req.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert_eq!(status(&ask(s.local, &req)), "HTTP/1.1 431 Request Header Fields Too Large");
        wait_idle(&s);
    }

    #[test]
    fn slow_clients_time_out_and_hold_at_most_the_connection_limit() {
        let (s, _) = server();
        let t0 = Instant::now();
        // A client that trickles its request: the deadline is for the whole head, not per read.
        let mut slow = TcpStream::connect(s.local).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let trickle = std::thread::spawn({
            let mut w = slow.try_clone().unwrap();
            move || {
                for b in b"GET /metrics HTTP/1.1\r\n" {
                    if w.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(150));
                }
            }
        });
        // Two silent ones fill the limit of three.
        let silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(s.local).unwrap()).collect();
        let deadline = Instant::now() + Duration::from_secs(2);
        while s.active() < 3 {
            assert!(Instant::now() < deadline, "{} active", s.active());
            std::thread::sleep(Duration::from_millis(5));
        }
        // The fourth is turned away at once.
        let a = ask(s.local, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status(&a), "HTTP/1.1 503 Service Unavailable");
        let mut out = String::new();
        let _ = slow.read_to_string(&mut out);
        assert_eq!(status(&out), "HTTP/1.1 408 Request Timeout");
        // Well before the trickle would have ended (23 octets, 3.45 s): one deadline, not one per read.
        let took = t0.elapsed();
        assert!(took >= limits().timeout && took < Duration::from_millis(2500), "{took:?}");
        for mut c in silent {
            let mut out = String::new();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = c.read_to_string(&mut out);
            assert_eq!(status(&out), "HTTP/1.1 408 Request Timeout");
        }
        let _ = trickle.join();
        wait_idle(&s);
        // Served again once they are gone.
        assert_eq!(status(&ask(s.local, b"GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let (s, published) = server();
        let e = start(s.local, published, limits()).unwrap_err();
        assert!(format!("{e:#}").contains(&format!("[daemon] metrics: cannot listen on {}", s.local)), "{e:#}");
    }
}
