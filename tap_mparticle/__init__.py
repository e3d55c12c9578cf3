"""tap-mparticle: mParticle's event and audience drops as Singer streams."""
