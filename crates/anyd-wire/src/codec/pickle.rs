//! Pickle (owned by the pickle helper).
