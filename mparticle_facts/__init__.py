"""Facts about mParticle's data that tap-mparticle and target-mparticle share.

Identity types and every spelling of them, MPIDs, and how numbers and times are
written. Neither plugin keeps its own copy, so the two cannot drift apart.
"""
