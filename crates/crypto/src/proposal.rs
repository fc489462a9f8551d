//! strongSwan proposal strings to wire proposals. STUB: being written.
