//! UDP encapsulation on port 4500 (RFC 3948). STUB: being written.
