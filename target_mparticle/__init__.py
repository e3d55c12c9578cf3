"""target-mparticle: Singer records into mParticle's Events API."""
