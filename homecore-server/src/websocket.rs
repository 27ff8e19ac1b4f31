//! The WebSocket API at `/api/websocket` (under construction).
