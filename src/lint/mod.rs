//! Offline checks of the host's configuration (`lookout lint …`).

pub mod net;
