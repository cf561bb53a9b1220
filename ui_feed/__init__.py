"""Live feed for the wall screens: the websocket fan-out hub and the wall page."""
