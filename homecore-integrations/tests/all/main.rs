//! Integration tests of the first-party integrations, loaded into a real registry.

mod helpers;
