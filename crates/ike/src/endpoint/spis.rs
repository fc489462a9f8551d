//! Inbound ESP SPIs unique across the endpoint (RFC 4303 §2.1: the SPI alone names an inbound SA
//! to the data plane, so a duplicate would replace another SA).

use super::Endpoint;
use crate::event::SaHandle;

impl Endpoint {
    /// Records the inbound ESP SPIs that SA `h` holds now (none once it is gone), so that no other
    /// SA draws one of them. An SPI that moved to another SA (a rekeyed IKE SA's CHILD SAs) stays
    /// with the SA that took it, whichever of the two is looked at first.
    /// Returns the SPIs that no SA holds any more.
    pub(super) fn register_spis(&mut self, h: SaHandle) -> Vec<u32> {
        let now_held = self.sas.get(&h).map(|s| s.inbound_spis()).unwrap_or_default();
        let mut gone = Vec::new();
        for spi in self.spis_of.remove(&h).unwrap_or_default() {
            if !now_held.contains(&spi) && self.esp_spis.get(&spi) == Some(&h) {
                self.esp_spis.remove(&spi);
                gone.push(spi);
            }
        }
        for spi in &now_held {
            self.esp_spis.insert(*spi, h);
        }
        if !now_held.is_empty() {
            self.spis_of.insert(h, now_held);
        }
        gone
    }
}
