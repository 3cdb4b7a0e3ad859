//! Host, container and app-process collectors (SPEC section 8).
