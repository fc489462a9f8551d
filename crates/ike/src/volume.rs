//! Volume limits of CHILD SAs (strongSwan's `rekey_bytes`, `rekey_packets`, `life_bytes`,
//! `life_packets`) and the end of the sequence number space (RFC 4303 §3.3.3): what the traffic
//! counters of an installed pair call for. The data plane reports the counters
//! ([`crate::Endpoint::handle_usage`]); the engine decides.

/// A child's limits; 0 is none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumeLimits {
    /// Rekey after this many octets (either way).
    pub rekey_bytes: u64,
    /// Rekey after this many packets (either way).
    pub rekey_packets: u64,
    /// Delete after this many octets.
    pub life_bytes: u64,
    /// Delete after this many packets.
    pub life_packets: u64,
}

/// What the data plane counted on one installed pair since it was installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildUsage {
    /// Octets and packets received on the inbound SA (authentic ones only).
    pub bytes_in: u64,
    /// Packets received on the inbound SA.
    pub packets_in: u64,
    /// Octets sent on the outbound SA.
    pub bytes_out: u64,
    /// Packets sent on the outbound SA.
    pub packets_out: u64,
    /// The outbound SA's last sequence number used.
    pub seq: u64,
    /// The last sequence number the outbound SA may use (2^32 - 1 without ESN).
    pub seq_limit: u64,
}

impl ChildUsage {
    /// The larger of the two directions, as each SA counts for itself.
    pub(crate) fn volume(&self) -> Usage {
        Usage {
            bytes: self.bytes_in.max(self.bytes_out),
            packets: self.packets_in.max(self.packets_out),
            seq: self.seq,
            seq_limit: self.seq_limit,
        }
    }
}

/// The traffic through a pair: the larger of the two directions, as each SA counts for itself, and
/// the outbound SA's sequence numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub bytes: u64,
    pub packets: u64,
    pub seq: u64,
    pub seq_limit: u64,
}

/// What the usage calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeAction {
    /// Rekey the pair.
    Rekey,
    /// Delete it.
    Delete,
}

/// The part of the sequence number space kept for traffic while the rekey runs: 1/16 (2^28 packets
/// without ESN, minutes at line rate).
const SEQ_MARGIN_SHIFT: u32 = 4;

/// A hard limit (or the last sequence number) reached deletes the pair; a soft one rekeys it.
pub(crate) fn volume_due(limits: &VolumeLimits, usage: &Usage) -> Option<VolumeAction> {
    let over = |used: u64, limit: u64| limit != 0 && used >= limit;
    // A data plane that cannot tell its sequence numbers reports a limit of 0: unknown, not reached.
    let seq_known = usage.seq_limit != 0;
    if over(usage.bytes, limits.life_bytes)
        || over(usage.packets, limits.life_packets)
        || (seq_known && usage.seq >= usage.seq_limit)
    {
        return Some(VolumeAction::Delete);
    }
    let seq_soft = usage.seq_limit - (usage.seq_limit >> SEQ_MARGIN_SHIFT);
    if over(usage.bytes, limits.rekey_bytes)
        || over(usage.packets, limits.rekey_packets)
        || (seq_known && usage.seq >= seq_soft)
    {
        return Some(VolumeAction::Rekey);
    }
    None
}

/// What to do now, given what was asked of this pair before (`asked`): each action once, and a
/// rekey before a delete. The daemon looks at the counters every 100–200 ms, so a busy pair can
/// cross its soft and its hard limit between two looks; it is then rekeyed first and deleted at the
/// next look only if the rekey has not replaced it by then, as if the soft limit had been seen in
/// time. (The data plane refuses to send past the last sequence number whatever happens here.)
pub(crate) fn volume_step(limits: &VolumeLimits, usage: &Usage, asked: Option<VolumeAction>) -> Option<VolumeAction> {
    match (volume_due(limits, usage)?, asked) {
        (due, Some(before)) if due == before => None,
        (VolumeAction::Delete, None) => Some(VolumeAction::Rekey),
        (due, _) => Some(due),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U32: u64 = u32::MAX as u64;

    fn usage(bytes: u64, packets: u64, seq: u64) -> Usage {
        Usage { bytes, packets, seq, seq_limit: U32 }
    }

    #[test]
    fn soft_limits_rekey_and_hard_limits_delete() {
        let l = VolumeLimits { rekey_bytes: 1000, rekey_packets: 10, life_bytes: 1100, life_packets: 11 };
        assert_eq!(volume_due(&l, &usage(999, 9, 9)), None);
        assert_eq!(volume_due(&l, &usage(1000, 1, 1)), Some(VolumeAction::Rekey));
        assert_eq!(volume_due(&l, &usage(0, 10, 10)), Some(VolumeAction::Rekey));
        assert_eq!(volume_due(&l, &usage(1100, 0, 0)), Some(VolumeAction::Delete));
        assert_eq!(volume_due(&l, &usage(0, 11, 11)), Some(VolumeAction::Delete));
    }

    #[test]
    fn each_action_once_and_a_rekey_before_a_delete() {
        let l = VolumeLimits { rekey_packets: 150, life_packets: 165, ..VolumeLimits::default() };
        let rekey = Some(VolumeAction::Rekey);
        let delete = Some(VolumeAction::Delete);
        assert_eq!(volume_step(&l, &usage(0, 149, 149), None), None);
        assert_eq!(volume_step(&l, &usage(0, 150, 150), None), rekey);
        assert_eq!(volume_step(&l, &usage(0, 160, 160), rekey), None, "asked already");
        assert_eq!(volume_step(&l, &usage(0, 165, 165), rekey), delete);
        assert_eq!(volume_step(&l, &usage(0, 170, 170), delete), None);
        // Both limits crossed between two looks: the rekey first, the delete at the next look.
        assert_eq!(volume_step(&l, &usage(0, 167, 167), None), rekey);
        assert_eq!(volume_step(&l, &usage(0, 180, 180), rekey), delete);
        // The same at the end of the sequence space.
        assert_eq!(volume_step(&VolumeLimits::default(), &usage(0, 0, U32), None), rekey);
        assert_eq!(volume_step(&VolumeLimits::default(), &usage(0, 0, U32), rekey), delete);
    }

    #[test]
    fn no_limits_means_only_the_sequence_space_counts() {
        let none = VolumeLimits::default();
        assert_eq!(volume_due(&none, &usage(u64::MAX, u64::MAX, 5)), None);
        // RFC 4303 §3.3.3: rekey well before 2^32 - 1, delete when it is reached.
        assert_eq!(volume_due(&none, &usage(0, 0, U32 - (U32 >> 4) - 1)), None);
        assert_eq!(volume_due(&none, &usage(0, 0, U32 - (U32 >> 4))), Some(VolumeAction::Rekey));
        assert_eq!(volume_due(&none, &usage(0, 0, U32)), Some(VolumeAction::Delete));
        let esn = Usage { seq: U32 + 1, seq_limit: u64::MAX, ..Usage::default() };
        assert_eq!(volume_due(&none, &esn), None, "with ESN 2^32 is nowhere near the end");
    }
}
