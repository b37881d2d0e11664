"""The websocket hub: rooms (one per live document), client connections and their protocols."""
