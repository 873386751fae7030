"""The media bridge (WHIP/WHEP pass-through relay); built by the media issue."""
