//! The `homecore` server: loads integrations at startup and speaks Home Assistant's REST and
//! WebSocket APIs (under construction).
#![forbid(unsafe_code)]

pub mod ha_json;
pub mod websocket;
