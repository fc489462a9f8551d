//! A deterministic, NO-SECURITY provider for simulations and fuzzing. STUB: being written.
