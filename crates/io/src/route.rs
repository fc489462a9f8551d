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
    #[error("ip {op} {cidr}: {stderr}")]
    Refused {
        /// The command: route replace, address del, ...
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
    ip("route replace", cidr, &args)
}

/// Removes the route to `cidr` through `dev`.
pub fn delete(cidr: &str, dev: &str) -> Result<(), RouteError> {
    let args = ["route".to_owned(), "del".into(), cidr.into(), "dev".into(), dev.into()];
    ip("route del", cidr, &args)
}

/// Puts `addr` (a host address: /32, /128) on `dev`: a client's virtual IP (RFC 7296 §2.19).
pub fn add_address(addr: IpAddr, dev: &str) -> Result<(), RouteError> {
    let cidr = host_cidr(addr);
    let args = ["address".to_owned(), "replace".into(), cidr.clone(), "dev".into(), dev.into()];
    ip("address replace", &cidr, &args)
}

/// Takes `addr` off `dev`.
pub fn delete_address(addr: IpAddr, dev: &str) -> Result<(), RouteError> {
    let cidr = host_cidr(addr);
    let args = ["address".to_owned(), "del".into(), cidr.clone(), "dev".into(), dev.into()];
    ip("address del", &cidr, &args)
}

fn host_cidr(addr: IpAddr) -> String {
    format!("{addr}/{}", if addr.is_ipv4() { 32 } else { 128 })
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
