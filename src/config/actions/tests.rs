//! Unit tests of `[[action]]` parsing and validation.
