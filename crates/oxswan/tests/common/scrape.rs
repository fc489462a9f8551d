//! Scraping an oxswan daemon's `[daemon] metrics` from inside its network namespace, and
//! `promtool check metrics` (Debian's `prometheus`) on what it serves: metrics.rs, radius.rs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::sh;

/// Sends `request` to `at` from inside the network namespace `ns`; the whole answer.
pub fn ask(ns: &str, at: SocketAddr, request: &str) -> String {
    let (ns, request) = (ns.to_owned(), request.to_owned());
    std::thread::spawn(move || {
        // This thread (only) moves into the namespace.
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut c = TcpStream::connect_timeout(&at, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    })
    .join()
    .unwrap()
}

/// A scrape: the text, and each sample by its series (`name{labels}`).
pub struct Scrape {
    pub text: String,
    pub samples: HashMap<String, f64>,
}

impl Scrape {
    pub fn get(&self, series: &str) -> f64 {
        *self.samples.get(series).unwrap_or_else(|| panic!("no {series} in\n{}", self.text))
    }
}

pub fn scrape(ns: &str, at: SocketAddr) -> Scrape {
    let answer = ask(ns, at, "GET /metrics HTTP/1.1\r\nHost: oxswan\r\nUser-Agent: Prometheus/2.42.0\r\n\r\n");
    let (head, text) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{answer}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
            (series.to_owned(), value.parse::<f64>().unwrap_or_else(|e| panic!("{l}: {e}")))
        })
        .collect();
    Scrape { text: text.to_owned(), samples }
}

/// `promtool check metrics` on a scrape: no error and no lint.
pub fn promtool(s: &Scrape) {
    let path = std::env::temp_dir().join(format!("oxswan-metrics-{}.txt", std::process::id()));
    std::fs::write(&path, &s.text).unwrap();
    let o = sh(&format!("promtool check metrics < {}", path.display()));
    let _ = std::fs::remove_file(&path);
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{}", s.text);
}

/// Scrapes until `check` accepts (the daemon publishes once a second), for up to `secs`.
pub fn scrape_until(ns: &str, at: SocketAddr, secs: u64, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = scrape(ns, at);
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "not reached in {secs} s:\n{}", s.text);
        std::thread::sleep(Duration::from_millis(200));
    }
}
