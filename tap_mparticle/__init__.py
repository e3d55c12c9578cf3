"""Singer tap for the event batches and audience files mParticle drops into Amazon S3."""
