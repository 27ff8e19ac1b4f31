//! Plugin manifests (being written).
