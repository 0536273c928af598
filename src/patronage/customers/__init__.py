"""Customer profiles, identities and merging, consent."""
