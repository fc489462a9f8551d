//! Sets a cfg for each group of tools the tests need that this machine has (tests/common/prereq.rs),
//! so that a test whose tools are missing is compiled `#[ignore]` and shows as ignored, not passed.
//! Under `CI=true` every group is set: CI must have installed them all, and a test finding one missing
//! fails.

#[path = "tests/common/prereq.rs"]
mod prereq;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=tests/common/prereq.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut watched = std::collections::BTreeSet::new();
    for p in prereq::ALL {
        println!("cargo::rustc-check-cfg=cfg({})", p.cfg);
        if ci || prereq::lacking(p).is_empty() {
            println!("cargo::rustc-cfg={}", p.cfg);
        }
        watched.extend(prereq::watched(p));
    }
    for w in watched {
        println!("cargo::rerun-if-changed={}", w.display());
    }
}
