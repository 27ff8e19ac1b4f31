//! Home Assistant JSON shapes shared by the REST and WebSocket APIs (under construction).
