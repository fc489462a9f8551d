//! The crypto workers: threads that compute the IKE_SA_INIT key exchanges the engine hands out
//! (`Endpoint::poll_work`) and give the results back to the IKE thread (`Input::KeyExchange`), so
//! that a gateway's handshakes use every core while its IKE SAs stay on one thread.

use std::sync::{Arc, Mutex, PoisonError, mpsc};

use oxswan_ike::endpoint::InitWork;

use crate::input::Input;

/// The workers' queue. Unbounded: the engine bounds what it hands out by its half-open limit.
pub(super) struct CryptoWorkers {
    queue: mpsc::Sender<InitWork>,
}

impl CryptoWorkers {
    /// `n` workers answering on `ike`; `None` for fewer than one.
    pub(super) fn start(n: usize, ike: &crate::input::Inbox) -> std::io::Result<Option<Self>> {
        if n == 0 {
            return Ok(None);
        }
        let (queue, jobs) = mpsc::channel::<InitWork>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..n {
            let jobs = jobs.clone();
            let ike = ike.clone();
            std::thread::Builder::new().name(format!("crypto{i}")).spawn(move || {
                loop {
                    // One worker waits in `recv` holding the lock, the others for the lock.
                    let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(work) = job else { return };
                    if ike.send(Input::KeyExchange(Box::new(work.run()))).is_err() {
                        return;
                    }
                }
            })?;
        }
        Ok(Some(Self { queue }))
    }

    /// Queues `work`; gives it back if every worker is gone (then the caller computes it).
    pub(super) fn submit(&self, work: InitWork) -> Option<InitWork> {
        self.queue.send(work).err().map(|e| e.0)
    }
}
