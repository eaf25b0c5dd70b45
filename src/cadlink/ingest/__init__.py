"""HTTP → decode → validate → cheap drops → buffer.put → 204. Never touches a database."""
