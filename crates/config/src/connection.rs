//! `[connections.*]`: addresses, proposals, sides, children, and the remote-access keys.

use core::net::IpAddr;
use core::time::Duration;
use std::str::FromStr as _;

use oxswan_crypto::proposal::{parse_esp_proposal, parse_ike_proposal};
use oxswan_ike::child::{Mode, TsConfig};
use oxswan_wire::sa::Proposal;

use crate::auth::{AuthKind, Known, local_side, remote_side};
use crate::raw::{RawConnection, S};
use crate::values::{duration, lifetime, parse_ts, span_of_time, volume};
use crate::{
    CHILD_REKEY_TIME, Child, Childless, ConfigError, Connection, Ctx, IKE_REKEY_TIME, PeerAction, PoolConfig,
    StartAction, TcpMode, Unique,
};

pub(crate) fn connection(
    ctx: &Ctx<'_>,
    name: &str,
    c: S<RawConnection>,
    known: &Known<'_>,
    pools: &[PoolConfig],
) -> Result<Connection, ConfigError> {
    let key = format!("connections.{name}");
    let span = c.span();
    let c = c.into_inner();
    let addrs = |v: &[S<String>], k: &str| -> Result<Vec<IpAddr>, ConfigError> {
        v.iter()
            .filter(|a| a.get_ref() != "%any")
            .map(|a| {
                a.get_ref().parse().map_err(|_| ctx.err(a.span(), &format!("{key}.{k}"), "not an IP address or %any"))
            })
            .collect()
    };
    let proposals = |v: &[S<String>], k: &str, ike: bool| -> Result<Vec<Proposal>, ConfigError> {
        v.iter()
            .flat_map(|p| p.get_ref().split(',').map(move |s| (p.span(), s.trim().to_owned())))
            .enumerate()
            .map(|(i, (sp, s))| {
                let parsed = if ike { parse_ike_proposal(&s) } else { parse_esp_proposal(&s) };
                let mut p = parsed.map_err(|e| ctx.err(sp.clone(), &format!("{key}.{k}"), e.to_string()))?;
                // RFC 9370 §2.2.4 builds the additional key exchanges of a CHILD SA on a first one
                // (PFS) in its CREATE_CHILD_SA.
                let real = |t: &oxswan_wire::sa::Transform| t.transform_id != oxswan_wire::KeId::NONE.0;
                let addke = p.transforms.iter().any(|t| t.transform_type.additional_ke_index().is_some() && real(t));
                let ke = p.transforms.iter().any(|t| t.transform_type == oxswan_wire::TransformType::KE && real(t));
                if !ike && addke && !ke {
                    return Err(ctx.err(
                        sp,
                        &format!("{key}.{k}"),
                        format!(
                            "'{s}': additional key exchanges (ke1_…ke7_) of a CHILD SA follow a first one (PFS, \
                             e.g. x25519), which this proposal lacks"
                        ),
                    ));
                }
                p.number = u8::try_from(i + 1).unwrap_or(u8::MAX);
                Ok(p)
            })
            .collect()
    };
    let mut ike = proposals(&c.proposals, "proposals", true)?;
    if ike.is_empty() {
        ike = oxswan_crypto::proposal::parse_ike_proposals("default")
            .map_err(|e| ctx.err(span.clone(), &key, e.to_string()))?;
    }
    let eap = |s: &S<crate::raw::RawSide>| AuthKind::parse(s.get_ref().auth.get_ref()).and_then(AuthKind::eap);
    if eap(&c.local).is_some() && eap(&c.remote).is_some() {
        return Err(ctx.err(
            c.remote.get_ref().auth.span(),
            &format!("{key}.remote.auth"),
            "EAP on both sides: only the client (the initiator) authenticates with EAP (RFC 7296 §2.16)",
        ));
    }
    let local = local_side(ctx, &format!("{key}.local"), c.local, known)?;
    let remote = remote_side(ctx, &format!("{key}.remote"), c.remote, known)?;
    for p in &c.pools {
        if !pools.iter().any(|q| q.name == *p.get_ref()) {
            return Err(ctx.err(
                p.span(),
                &format!("{key}.pools"),
                format!("`{}`: no [pools.{}] table", p.get_ref(), p.get_ref()),
            ));
        }
    }
    let unique = match c.unique.as_ref().map(|u| (u.get_ref().as_str(), u.span())) {
        None | Some(("no", _)) => Unique::No,
        Some(("never", _)) => Unique::Never,
        Some(("replace", _)) => Unique::Replace,
        Some(("keep", _)) => Unique::Keep,
        Some((other, sp)) => {
            return Err(ctx.err(sp, &format!("{key}.unique"), format!("`{other}`: use no, never, replace or keep")));
        }
    };
    let childless = match c.childless.as_ref().map(|u| (u.get_ref().as_str(), u.span())) {
        None | Some(("allow", _)) => Childless::Allow,
        Some(("prefer", _)) => Childless::Prefer,
        Some(("force", _)) => Childless::Force,
        Some(("never", _)) => Childless::Never,
        Some((other, sp)) => {
            return Err(ctx.err(
                sp,
                &format!("{key}.childless"),
                format!("`{other}`: use allow, prefer, force or never"),
            ));
        }
    };
    let ppk_id = match c.ppk_id.as_ref() {
        Some(v) if v.get_ref().is_empty() => return Err(ctx.err(v.span(), &format!("{key}.ppk_id"), "empty PPK_ID")),
        v => v.map(|v| v.get_ref().clone()),
    };
    let tcp = match c.tcp.as_ref().map(|u| (u.get_ref().as_str(), u.span())) {
        None | Some(("no", _)) => TcpMode::No,
        Some(("fallback", _)) => TcpMode::Fallback,
        Some(("always", _)) => TcpMode::Always,
        Some((other, sp)) => {
            return Err(ctx.err(sp, &format!("{key}.tcp"), format!("`{other}`: use no, fallback or always")));
        }
    };
    let tcp_port = match &c.tcp_port {
        Some(p) if *p.get_ref() == 0 => return Err(ctx.err(p.span(), &format!("{key}.tcp_port"), "port 0")),
        Some(p) => *p.get_ref(),
        None => 4500,
    };
    let vips = c
        .vips
        .iter()
        .map(|v| {
            IpAddr::from_str(v.get_ref().trim()).map_err(|_| {
                ctx.err(
                    v.span(),
                    &format!("{key}.vips"),
                    format!("`{}` is not an IP address (0.0.0.0 or :: asks for any)", v.get_ref()),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut children = Vec::new();
    for (cname, ch) in c.children {
        let ckey = format!("{key}.children.{cname}");
        let ch = ch.into_inner();
        let ts = |v: &[S<String>], k: &str| -> Result<Vec<TsConfig>, ConfigError> {
            if v.is_empty() {
                return Ok(vec![TsConfig::Dynamic]);
            }
            v.iter().map(|t| parse_ts(t.get_ref()).map_err(|m| ctx.err(t.span(), &format!("{ckey}.{k}"), m))).collect()
        };
        let mut esp = proposals(&ch.esp_proposals, &format!("children.{cname}.esp_proposals"), false)?;
        if esp.is_empty() {
            esp = oxswan_crypto::proposal::parse_esp_proposals("default")
                .map_err(|e| ctx.err(0..0, &ckey, e.to_string()))?;
        }
        let start_action = match ch.start_action.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
            None | Some(("none", _)) => StartAction::None,
            Some(("start", _)) => StartAction::Start,
            Some(("trap", _)) => StartAction::Trap,
            Some((other, sp)) => {
                return Err(ctx.err(
                    sp,
                    &format!("{ckey}.start_action"),
                    format!("`{other}`: use none, start or trap"),
                ));
            }
        };
        let mode = match ch.mode.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
            None | Some(("tunnel", _)) => Mode::Tunnel,
            // The data plane carries whole IP packets between TUN devices: transport mode would
            // need the kernel's own ESP.
            Some(("transport", sp)) => {
                return Err(ctx.err(
                    sp,
                    &format!("{ckey}.mode"),
                    "`transport` needs kernel ESP, which this data plane is not; use tunnel",
                ));
            }
            Some((other, sp)) => {
                return Err(ctx.err(sp, &format!("{ckey}.mode"), format!("`{other}`: use tunnel or transport")));
            }
        };
        let rekey_time = lifetime(ctx, ch.rekey_time, &format!("{ckey}.rekey_time"), Some(CHILD_REKEY_TIME))?;
        let rekey_bytes = volume(ctx, ch.rekey_bytes, &format!("{ckey}.rekey_bytes"))?.unwrap_or(0);
        let rekey_packets = volume(ctx, ch.rekey_packets, &format!("{ckey}.rekey_packets"))?.unwrap_or(0);
        children.push(Child {
            name: cname,
            local_ts: ts(&ch.local_ts, "local_ts")?,
            remote_ts: ts(&ch.remote_ts, "remote_ts")?,
            esp_proposals: esp,
            start_action,
            mode,
            rekey_time,
            life_time: lifetime(
                ctx,
                ch.life_time,
                &format!("{ckey}.life_time"),
                rekey_time.map(|r| r.saturating_add(r / 10)),
            )?,
            rand_time: jitter(ctx, ch.rand_time, rekey_time, &ckey)?,
            rekey_bytes,
            life_bytes: volume(ctx, ch.life_bytes, &format!("{ckey}.life_bytes"))?
                .unwrap_or(rekey_bytes.saturating_add(rekey_bytes / 10)),
            rekey_packets,
            life_packets: volume(ctx, ch.life_packets, &format!("{ckey}.life_packets"))?
                .unwrap_or(rekey_packets.saturating_add(rekey_packets / 10)),
            per_cpu_sas: ch.per_cpu_sas.unwrap_or(false),
        });
    }
    let remote_addrs = addrs(&c.remote_addrs, "remote_addrs")?;
    if remote_addrs.is_empty() && children.iter().any(|c| c.start_action != StartAction::None) {
        return Err(ctx.err(
            span,
            &format!("{key}.remote_addrs"),
            "a child with start_action start or trap needs a remote address",
        ));
    }
    let rekey_time = lifetime(ctx, c.rekey_time, &format!("{key}.rekey_time"), Some(IKE_REKEY_TIME))?;
    let reauth_time = lifetime(ctx, c.reauth_time, &format!("{key}.reauth_time"), None)?;
    Ok(Connection {
        name: name.to_owned(),
        local_addrs: addrs(&c.local_addrs, "local_addrs")?,
        remote_addrs,
        proposals: ike,
        encap: c.encap.unwrap_or(false),
        dpd_delay: duration(ctx, c.dpd_delay, &format!("{key}.dpd_delay"))?,
        dpd_action: action(ctx, c.dpd_action.as_ref(), &format!("{key}.dpd_action"), "clear")?,
        close_action: action(ctx, c.close_action.as_ref(), &format!("{key}.close_action"), "none")?,
        rekey_time,
        reauth_time,
        over_time: span_of_time(ctx, c.over_time, &format!("{key}.over_time"))?,
        rand_time: jitter(ctx, c.rand_time, rekey_time.into_iter().chain(reauth_time).min(), &key)?,
        pools: c.pools.into_iter().map(S::into_inner).collect(),
        unique,
        childless,
        ppk_id,
        ppk_required: c.ppk_required.unwrap_or(false),
        redirect: crate::gateway(ctx, c.redirect.as_ref(), &format!("{key}.redirect"))?,
        resumption: c.resumption.unwrap_or(false),
        mobike: c.mobike.unwrap_or(true),
        fragmentation: c.fragmentation.unwrap_or(true),
        tcp,
        tcp_port,
        vips,
        local,
        remote,
        children,
    })
}

/// `rand_time` (`key`'s), which makes a rekey up to that much earlier than `of` (strongSwan's
/// rekey_time - random(0, rand_time)): longer than `of` would make it due before the SA exists.
fn jitter(
    ctx: &Ctx<'_>,
    v: Option<S<String>>,
    of: Option<Duration>,
    key: &str,
) -> Result<Option<Duration>, ConfigError> {
    let span = v.as_ref().map(S::span);
    let t = span_of_time(ctx, v, &format!("{key}.rand_time"))?;
    if let (Some(t), Some(of), Some(span)) = (t, of, span)
        && t >= of
    {
        return Err(ctx.err(
            span,
            &format!("{key}.rand_time"),
            format!("{} s, not less than the {} s it makes earlier", t.as_secs(), of.as_secs()),
        ));
    }
    Ok(t)
}

/// `clear`/`none`, `restart`/`start` or `trap`: strongSwan's words for the two actions.
fn action(ctx: &Ctx<'_>, v: Option<&S<String>>, key: &str, off: &str) -> Result<PeerAction, ConfigError> {
    let on = if off == "clear" { "restart" } else { "start" };
    match v.map(|v| (v.get_ref().as_str(), v.span())) {
        None => Ok(PeerAction::Clear),
        Some((w, _)) if w == off => Ok(PeerAction::Clear),
        Some((w, _)) if w == on => Ok(PeerAction::Restart),
        Some(("trap", _)) => Ok(PeerAction::Trap),
        Some((other, span)) => Err(ctx.err(span, key, format!("`{other}`: use {off}, {on} or trap"))),
    }
}
