//! Routes through the TUN device, by `ip route` (iproute2): the daemon changes a handful per SA,
//! and iproute2 is what an administrator reads them back with.

use std::net::IpAddr;
use std::process::Command;

/// A route that could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// `ip` could not be run.
    #[error("cannot run ip: {0}")]
    Spawn(#[from] std::io::Error),
    /// `ip` refused.
    #[error("ip route {op} {cidr}: {stderr}")]
    Refused {
        /// replace or del.
        op: &'static str,
        /// The destination.
        cidr: String,
        /// What `ip` said.
        stderr: String,
    },
}

/// Routes `cidr` through `dev`, with `src` as the source address for locally sent packets.
pub fn replace(cidr: &str, dev: &str, src: Option<IpAddr>) -> Result<(), RouteError> {
    let mut args = vec!["route".to_owned(), "replace".into(), cidr.into(), "dev".into(), dev.into()];
    if let Some(s) = src {
        args.extend(["src".to_owned(), s.to_string()]);
    }
    ip("replace", cidr, &args)
}

/// Removes the route to `cidr` through `dev`.
pub fn delete(cidr: &str, dev: &str) -> Result<(), RouteError> {
    let args = ["route".to_owned(), "del".into(), cidr.into(), "dev".into(), dev.into()];
    ip("del", cidr, &args)
}

fn ip(op: &'static str, cidr: &str, args: &[String]) -> Result<(), RouteError> {
    let o = Command::new("ip").args(args).output()?;
    if o.status.success() {
        Ok(())
    } else {
        Err(RouteError::Refused {
            op,
            cidr: cidr.to_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        })
    }
}
