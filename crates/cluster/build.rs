//! Sets `have_etcd` when this machine has etcd (or under `CI=true`, where it must), with the same
//! check as the daemon's tests (crates/oxswan/tests/common/prereq.rs): without it the tests that run
//! a real etcd are compiled `#[ignore]` and counted as skipped, not passed.

#[path = "../oxswan/tests/common/prereq.rs"]
mod prereq;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../oxswan/tests/common/prereq.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let p = &prereq::ETCD;
    println!("cargo::rustc-check-cfg=cfg({})", p.cfg);
    if ci || prereq::lacking(p).is_empty() {
        println!("cargo::rustc-cfg={}", p.cfg);
    }
    for w in prereq::watched(p) {
        println!("cargo::rerun-if-changed={}", w.display());
    }
}
