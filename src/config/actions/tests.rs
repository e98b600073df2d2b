// replaced by the kinds slice at merge (snapshot of wt-kinds taken 12:45 as a placeholder)
//! Unit tests of `[[action]]` parsing and validation.
