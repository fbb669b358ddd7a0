"""Reference-data services, one module per entity: each function owns one transaction, checks who may see
what, and writes one audit row per change. Another organization's record answers exactly like a missing
one. What the entities share (look-up, create, update under the ETag, audit) is in ``records``."""
