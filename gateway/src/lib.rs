//! WebSocket gateway: live push, presence and typing (issue: gateway).
