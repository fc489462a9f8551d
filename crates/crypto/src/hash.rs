//! SHA-1 where IKEv2 names it as a fingerprint, not as a security function: NAT detection
//! (RFC 7296 §2.23) and CERTREQ / hash-and-URL key identifiers (RFC 7296 §3.7). Neither input is secret.

use aws_lc_rs::digest;

/// Length of a SHA-1 digest.
pub const SHA1_LEN: usize = 20;

/// SHA-1 over the concatenation of `parts`.
pub fn sha1(parts: &[&[u8]]) -> [u8; SHA1_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; SHA1_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips_180_vectors() {
        // FIPS 180-2 Appendix A.1 ("abc") and the empty message.
        assert_eq!(hex::encode(sha1(&[b"ab", b"c"])), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex::encode(sha1(&[])), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
