//! From a negotiated proposal to the algorithms that run it.

use oxswan_crypto::alg::{EncrAlg, IntegAlg, PrfAlg};
use oxswan_crypto::keys::IkeSuite;
use oxswan_wire::sa::Proposal;
use oxswan_wire::{EncrId, IntegId, KeId, PrfId, TransformType};

use crate::error::{IkeError, Result};

/// The algorithms of a selected IKE proposal (exactly one transform per type, as `select_proposal`
/// returns it) and its key exchange method.
pub fn ike_suite(p: &Proposal) -> Result<(IkeSuite, KeId)> {
    let one = |ty| p.transforms_of(ty).next();
    let encr = one(TransformType::ENCR).ok_or(IkeError::NoProposalChosen)?;
    let encr = EncrAlg::new(EncrId(encr.transform_id), encr.key_length())?;
    let prf = PrfAlg::new(PrfId(one(TransformType::PRF).ok_or(IkeError::NoProposalChosen)?.transform_id))?;
    let integ = match one(TransformType::INTEG) {
        Some(t) if t.transform_id != IntegId::NONE.0 => Some(IntegAlg::new(IntegId(t.transform_id))?),
        _ => None,
    };
    if encr.is_aead() == integ.is_some() {
        return Err(IkeError::NoProposalChosen);
    }
    let ke = KeId(one(TransformType::KE).ok_or(IkeError::NoProposalChosen)?.transform_id);
    Ok((IkeSuite { encr, integ, prf }, ke))
}
