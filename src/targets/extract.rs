//! Turning a parsed JSON document into series, following the compiled rules.
