"""Evidence packs: one self-contained, signed directory per model version for an auditor offline."""
