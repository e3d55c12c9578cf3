"""What tap-mparticle and target-mparticle share.

Facts about mParticle's data (identity types and every spelling of them, MPIDs, how
numbers and times are written), and the guards both plugins put round their config
files and logs. Neither plugin keeps its own copy, so the two cannot drift apart.
"""
